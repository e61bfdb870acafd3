"""Redis between nodes: publishes that say when they failed, and a listener that comes back fast.

python-socketio's ``AsyncRedisManager`` carries every broadcast to the other
nodes, and hides Redis trouble in two ways that ``RedisChannel`` undoes (the
node's manager, ``gateway.sockets.RedisSockets``, forwards its ``_publish`` and
``_listen`` hooks here; pinned and covered by
``tests/contract/test_socketio_redis_internals.py``; docs/architecture.md lists them):

* ``_publish`` tries twice, logs, and returns as if it had published. Here a
  relay batch (``RedisChannel.publish``, called by ``gateway.publisher`` and by
  ``RedisPublisher`` of ``roomcast relay``) goes out in one pipeline and raises
  ``PublishFailed`` unless Redis took all of it, so the relay keeps the outbox
  rows and publishes them again. Other messages (presence and typing notices)
  are best effort, as before, but never wait: after a failure no publish is
  tried again before a capped backoff (50 ms doubling to 1 s), so a Redis
  outage costs a node's own clients nothing.
* ``_listen`` reconnects with a backoff doubling to 60 s (node B heard nothing
  for 31 s after a 16 s outage). Here it retries every 50 ms doubling to 1 s,
  and tells the node when it listens again (``on_listening``: the position
  check runs at once).

The messages are python-socketio's own (``AsyncPubSubManager.emit``'s dict),
so every node's manager decodes them unchanged. ``RedisLink`` holds what
``/health`` says about Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import structlog
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from roomcast.gateway import jsoncodec
from roomcast.gateway.delivery import room_name
from roomcast.outbox.relay import Outgoing, PublishFailed

__all__ = ["RedisChannel", "RedisLink", "RedisPublisher"]

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


class RedisChannel:
    """One node's (or a relay's) end of the Redis channel every node listens to.

    Messages are python-socketio's pub/sub messages (``AsyncPubSubManager.emit``
    builds the same dict), so each node's ``AsyncRedisManager`` decodes them as
    its own. ``publish`` is for relayed events and says when Redis did not take
    them; ``notice`` is for everything else and never waits.
    """

    def __init__(
        self,
        url: str,
        channel: str = "roomcast",
        *,
        host_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.channel = channel
        self.host_id = uuid.uuid4().hex if host_id is None else host_id
        """Who sent a message: a node skips its own (it delivered them already)."""
        self.link = RedisLink(clock)
        self.on_listening: Callable[[], None] | None = None
        """Called when the listener subscribed (again): the position check runs at once."""
        self._client: Any = None

    def message(self, event: str, data: Any, room: str, namespace: str = "/") -> dict[str, Any]:
        """A room broadcast as python-socketio's pub/sub message (room payloads are JSON,
        never binary, so the binary walk of ``AsyncPubSubManager.emit`` is left out)."""
        return {
            "method": "emit",
            "event": event,
            "data": list(data) if isinstance(data, tuple) else [data],
            "binary": False,
            "namespace": namespace,
            "room": room,
            "skip_sid": None,
            "callback": None,
            "host_id": self.host_id,
        }

    def _redis(self) -> Any:
        if self._client is None:
            # Made once: its pool reconnects by itself on the next try.
            self._client = aioredis.Redis.from_url(self.url, **_client_options(publishing=True))
        return self._client

    async def publish(self, messages: Sequence[Any]) -> None:
        """Put ``messages`` on the channel in one pipeline, in order: all taken, or
        ``PublishFailed`` (some may have gone out; nodes drop the copies by seq).

        One round trip for the whole batch rather than one per message (redis-py's
        ``pipeline(transaction=False)``: no MULTI, the PUBLISHes are sent together).
        """
        if not messages:
            return
        link = self.link
        if not link.may_try():
            raise PublishFailed(f"Redis is down ({link.last_error})", retry_in=link.retry_in())
        try:
            async with self._redis().pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.publish(self.channel, jsoncodec.dumps(message))
                await pipe.execute()
        except Exception as exc:
            link.publish_failed(exc)
            log.warning("redis_publish_failed", error=repr(exc), messages=len(messages))
            raise PublishFailed(repr(exc), retry_in=link.retry_in()) from exc
        link.published()

    async def notice(self, message: Any) -> None:
        """Best effort (presence, typing): never waits for a Redis that is down."""
        with contextlib.suppress(PublishFailed):
            await self.publish([message])

    async def listen(self) -> AsyncIterator[Any]:
        """The channel's messages, for ever: after a failure it subscribes again
        within ``MAX_BACKOFF`` (python-socketio's own listener backs off to 60 s)."""
        delay = MIN_BACKOFF
        channel = self.channel.encode()
        while True:
            client: Any = None
            pubsub: Any = None
            try:
                client = aioredis.Redis.from_url(self.url, **_client_options(publishing=False))
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

    async def close(self, listener: object = None) -> None:
        """Cancel ``listener`` (the manager's listener task, if any) and close the client."""
        if isinstance(listener, asyncio.Task):
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        client: Any = self._client
        if client is not None:
            self._client = None
            with contextlib.suppress(Exception):
                await client.aclose()


class RedisPublisher:
    """The relay's publisher without sockets (``roomcast relay``): each batch goes
    to every node in one pipeline, or raises ``PublishFailed`` (the relay keeps it)."""

    def __init__(self, url: str, channel: str = "roomcast") -> None:
        self.channel = RedisChannel(url, channel)
        self.link = self.channel.link

    async def publish(self, events: Sequence[Outgoing]) -> None:
        channel = self.channel
        await channel.publish(
            [channel.message(e.event, (e.payload, e.offset), room_name(e.room_id)) for e in events]
        )

    async def close(self) -> None:
        await self.channel.close()
