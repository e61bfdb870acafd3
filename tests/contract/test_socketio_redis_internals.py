"""Contract: the parts of python-socketio's Redis manager that gateway/redislink.py overrides.

Pinned (pyproject: python-socketio >=5.18.1,<5.19) and listed in docs/architecture.md
(*Overridden private parts of the libraries*). These fail when an upgrade moves them:

* ``AsyncPubSubManager._publish(message)``: every message to other nodes goes
  through it, ``emit`` included (after delivering locally); ours raises
  ``PublishFailed`` for a relayed event instead of logging "giving up".
* ``AsyncPubSubManager._listen()``: the async generator ``_thread`` reads the other
  nodes' messages from; ours reconnects every <= 1 s instead of up to 60 s.
* ``AsyncRedisManager`` attributes read by ours: ``redis_url``, ``channel``,
  ``json``, ``redis``; ``thread``, the listener task ``initialize`` starts, which
  ``RedisDelivery.close`` cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import inspect
import socket
import time

import msgspec
import pytest
import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager

from roomcast.gateway import jsoncodec
from roomcast.gateway.redislink import MAX_BACKOFF, RedisDelivery, RedisPublisher
from roomcast.outbox.relay import PublishFailed


def test_RedisDelivery_publish_and_listen_are_checked_against_python_socketio_5_18():
    version = tuple(int(p) for p in importlib.metadata.version("python-socketio").split(".")[:2])
    assert version == (5, 18), (
        f"RedisDelivery._publish/_listen (src/gateway/redislink.py) were checked against"
        f" python-socketio 5.18, not {version}: re-check them before raising the pin"
    )


def test_RedisDelivery_publish_is_what_emit_calls_after_delivering_locally():
    source = inspect.getsource(AsyncPubSubManager.emit)
    local = source.find("await self._handle_emit(message)")
    remote = source.find("await self._publish(message)")
    assert 0 <= local < remote, (
        "RedisDelivery._publish (src/gateway/redislink.py): AsyncPubSubManager.emit no longer"
        " delivers locally, then publishes through _publish(message)"
    )


def test_RedisDelivery_listen_is_what_the_listener_task_reads():
    assert "self._listen()" in inspect.getsource(AsyncPubSubManager._thread), (
        "RedisDelivery._listen (src/gateway/redislink.py): AsyncPubSubManager._thread no"
        " longer reads the other nodes' messages from self._listen()"
    )
    assert inspect.isasyncgenfunction(RedisDelivery._listen)


def test_RedisDelivery_and_RedisPublisher_read_the_managers_attributes():
    manager = socketio.AsyncRedisManager("redis://127.0.0.1:1/0", channel="c", write_only=True)
    for name in ("redis_url", "channel", "json", "redis"):
        assert hasattr(manager, name), (
            f"RedisDelivery/RedisPublisher (src/gateway/redislink.py): AsyncRedisManager.{name}"
            " is gone"
        )


def test_RedisDelivery_close_cancels_the_task_initialize_keeps_in_thread():
    source = inspect.getsource(AsyncPubSubManager.initialize)
    assert "self.thread = self.server.start_background_task(self._thread)" in source, (
        "RedisDelivery.close (src/gateway/redislink.py): AsyncPubSubManager.initialize no"
        " longer keeps the listener task in self.thread; close() would leave it running"
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_RedisPublisher_publish_raises_when_redis_did_not_take_it_and_backs_off():
    publisher = RedisPublisher(f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        started = time.monotonic()
        with pytest.raises(PublishFailed):
            await publisher.emit("room:updated", {"seq": 1}, namespace="/", room="room:r")
        assert time.monotonic() - started < 2  # one try, no redis-py retries
        with pytest.raises(PublishFailed) as refused:  # within the backoff: not even tried
            await publisher.emit("room:updated", {"seq": 2}, namespace="/", room="room:r")
        assert 0 < refused.value.retry_in <= MAX_BACKOFF
        assert publisher.link.publish_failures == 1
        assert publisher.link.status()["publishing"] is False
    finally:
        await publisher.close()


async def test_RedisDelivery_listen_reads_what_RedisPublisher_publish_sends(redis_url):
    """Through a real Redis: python-socketio's own emit message, read by our _listen."""
    listener = RedisDelivery(redis_url, channel="roomcast", json=jsoncodec)
    publisher = RedisPublisher(redis_url)
    heard: asyncio.Queue[bytes] = asyncio.Queue()
    subscribed = asyncio.Event()
    listener.on_listening = subscribed.set

    async def listen() -> None:
        async for data in listener._listen():
            await heard.put(data)

    task = asyncio.create_task(listen())
    try:
        async with asyncio.timeout(10):
            await subscribed.wait()
        payload = msgspec.Raw(b'{"eventId":"e1","seq":7}')
        await publisher.emit("room:updated", payload, namespace="/", room="room:r1")
        async with asyncio.timeout(10):
            message = jsoncodec.loads(await heard.get())
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await publisher.close()
        await listener.close()
    # The fields AsyncPubSubManager._thread / _handle_emit read on the other node.
    assert message["method"] == "emit"
    assert message["event"] == "room:updated"
    assert message["room"] == "room:r1"
    assert message["namespace"] == "/"
    assert message["data"] == [{"eventId": "e1", "seq": 7}]
    assert message["host_id"] == publisher.host_id
