"""Redis between nodes: publishes that say when they failed, and a listener that comes back fast.

python-socketio's ``AsyncRedisManager`` carries every broadcast to the other
nodes, and hides Redis trouble in two ways this module undoes (each through the
hook ``AsyncPubSubManager`` documents for its subclasses, pinned and covered by
``tests/contract/test_socketio_redis_internals.py``; docs/architecture.md lists them):

* ``_publish`` tries twice, logs, and returns as if it had published. Here a
  relayed event's publish (``RedisDelivery.publish_event``, the
  ``RedisPublisher`` of ``roomcast relay``) raises ``PublishFailed``, so the
  relay keeps the outbox row and publishes it again. Other messages (presence
  and typing notices) are best effort, as before, but never wait: after a
  failure no publish is tried again before a capped backoff (50 ms doubling to
  1 s), so a Redis outage costs a node's own clients nothing.
* ``_listen`` reconnects with a backoff doubling to 60 s (node B heard nothing
  for 31 s after a 16 s outage). Here it retries every 50 ms doubling to 1 s,
  and tells the node when it listens again (``on_listening``: the position
  check runs at once).

``RedisLink`` holds what ``/health`` says about Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import socketio
import structlog
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from roomcast.gateway import jsoncodec
from roomcast.gateway.delivery import LocalDelivery
from roomcast.outbox.relay import PublishFailed

__all__ = ["RedisDelivery", "RedisLink", "RedisPublisher"]

log = structlog.get_logger("roomcast.redis")

MIN_BACKOFF = 0.05
MAX_BACKOFF = 1.0
"""Seconds between two tries at most, publishing or listening (issue 19: <= 1 s)."""

_TIMEOUT = 0.5
"""Seconds a connect or a publish may take before it counts as failed."""


def _client_options(*, publishing: bool) -> dict[str, Any]:
    # No retries inside redis-py (its default backs off for seconds): one try,
    # and our own capped backoff decides when the next one is.
    options: dict[str, Any] = {
        "socket_connect_timeout": _TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
    }
    if publishing:
        options["socket_timeout"] = _TIMEOUT
    else:
        # A listener that hears nothing is normal; a PING every second finds a
        # connection that died without closing (a paused or unplugged server).
        options["socket_timeout"] = None
        options["health_check_interval"] = 1
    return options


class RedisLink:
    """The state of one node's Redis link, and when the next try may be made."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._backoff = 0.0
        self._retry_at = 0.0
        self.publishing = True
        """The last publish reached Redis (or none was tried yet)."""
        self.listening = False
        self.last_error: str | None = None
        self.publish_failures = 0
        self.reconnects = 0
        """Times the listener subscribed again after losing Redis."""
        self.down_since: float | None = None

    def may_try(self) -> bool:
        return self.publishing or self._clock() >= self._retry_at

    def retry_in(self) -> float:
        """Seconds until the next publish may be tried."""
        return 0.0 if self.publishing else max(self._retry_at - self._clock(), 0.0)

    def published(self) -> None:
        if not self.publishing:
            log.info("redis_publish_recovered")
        self.publishing = True
        self._backoff = 0.0
        if self.listening:
            self.down_since = None

    def publish_failed(self, exc: BaseException) -> None:
        self.publish_failures += 1
        self._fail(exc)
        self.publishing = False
        self._backoff = min(max(self._backoff * 2, MIN_BACKOFF), MAX_BACKOFF)
        self._retry_at = self._clock() + self._backoff

    def listen_failed(self, exc: BaseException) -> None:
        self._fail(exc)
        self.listening = False

    def subscribed(self) -> None:
        """The listener subscribed: Redis answers, so publishing may be tried at once too."""
        if self.last_error is not None:
            self.reconnects += 1
        self.listening = True
        self.publishing = True
        self._backoff = 0.0
        self.down_since = None

    def _fail(self, exc: BaseException) -> None:
        self.last_error = repr(exc)
        if self.down_since is None:
            self.down_since = self._clock()

    @property
    def ok(self) -> bool:
        return self.publishing and self.listening

    def status(self) -> dict[str, object]:
        down = None if self.down_since is None else round(self._clock() - self.down_since, 3)
        return {
            "ok": self.ok,
            "publishing": self.publishing,
            "listening": self.listening,
            "publishFailures": self.publish_failures,
            "reconnects": self.reconnects,
            "downSeconds": down,
            "lastError": self.last_error,
        }


async def _publish_strictly(manager: Any, link: RedisLink, message: Any) -> None:
    """One try at putting ``message`` on the manager's channel; ``PublishFailed`` if not."""
    if not link.may_try():
        raise PublishFailed(f"Redis is down ({link.last_error})", retry_in=link.retry_in())
    try:
        if manager.redis is None:
            # The client is made once: its pool reconnects by itself on the next try.
            manager.redis = aioredis.Redis.from_url(
                manager.redis_url, **_client_options(publishing=True)
            )
        await manager.redis.publish(manager.channel, manager.json.dumps(message))
    except Exception as exc:
        link.publish_failed(exc)
        log.warning("redis_publish_failed", error=repr(exc))
        raise PublishFailed(repr(exc), retry_in=link.retry_in()) from exc
    link.published()


_strict: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "roomcast_strict_publish", default=None
)
"""(event, room) of the relayed event being published now: its publish must not fail silently."""


class RedisDelivery(socketio.AsyncRedisManager, LocalDelivery):  # type: ignore[misc]
    """Several nodes share broadcasts through Redis; each node delivers locally via
    ``LocalDelivery.emit`` (it sits below the pub/sub layer in the MRO)."""

    redis: Any

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.link = RedisLink()
        self.on_listening: Callable[[], None] | None = None
        self._clients: list[Any] = []

    async def publish_event(self, event: str, data: Any, room: str) -> None:
        """A relayed event: to this node's sockets, then to the others through Redis.

        Raises ``PublishFailed`` when Redis did not take it (this node's sockets
        have it already; the relay publishes it again and this node drops the copy).
        """
        token = _strict.set((event, room))
        try:
            await self.emit(event, data, namespace="/", room=room)
        finally:
            _strict.reset(token)

    async def _publish(self, data: Any) -> None:
        strict = _strict.get()
        if (
            strict is not None
            and isinstance(data, dict)
            and data.get("method") == "emit"
            and (data.get("event"), data.get("room")) == strict
        ):
            await _publish_strictly(self, self.link, data)
            return
        # A notice (presence, typing) is best effort, and never waits for Redis.
        with contextlib.suppress(PublishFailed):
            await _publish_strictly(self, self.link, data)

    async def _listen(self) -> AsyncIterator[Any]:
        delay = MIN_BACKOFF
        channel = self.channel.encode()
        while True:
            client: Any = None
            pubsub: Any = None
            try:
                client = aioredis.Redis.from_url(
                    self.redis_url, **_client_options(publishing=False)
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                self.link.subscribed()
                delay = MIN_BACKOFF
                if self.on_listening is not None:
                    self.on_listening()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if (
                        message is not None
                        and message.get("type") == "message"
                        and message.get("channel") == channel
                    ):
                        yield message["data"]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.link.listening:
                    log.warning("redis_listen_failed", error=repr(exc), retry_in=delay)
                self.link.listen_failed(exc)
            finally:
                for opened in (pubsub, client):
                    if opened is not None:
                        with contextlib.suppress(Exception):
                            await opened.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def close(self) -> None:
        """Stop listening and close the Redis client; for shutdown."""
        listener = getattr(self, "thread", None)
        if isinstance(listener, asyncio.Task):
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        client: Any = self.redis
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
            self.redis = None


class RedisPublisher(socketio.AsyncRedisManager):  # type: ignore[misc]
    """A write-only manager for a relay without sockets (``roomcast relay``): every
    publish either reaches Redis or raises ``PublishFailed``."""

    redis: Any

    def __init__(self, url: str) -> None:
        super().__init__(url, channel="roomcast", write_only=True, json=jsoncodec)
        self.link = RedisLink()

    async def _publish(self, data: Any) -> None:
        await _publish_strictly(self, self.link, data)

    async def close(self) -> None:
        client: Any = self.redis
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
            self.redis = None
