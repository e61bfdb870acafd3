"""Contract: the parts of python-socketio's Redis manager that gateway/sockets.py and
gateway/redislink.py rely on.

Pinned (pyproject: python-socketio >=5.18.1,<5.19) and listed in docs/architecture.md
(*Overridden private parts of the libraries*). These fail when an upgrade moves them:

* ``AsyncPubSubManager._handle_emit(message)``: where a broadcast is delivered on
  this node, for another node's message (``_thread``) and for this node's own
  ``emit``; ``RedisSockets._handle_emit`` forwards it to the node's
  ``RoomDelivery`` and decodes ``data`` as upstream does.
* ``AsyncPubSubManager._publish(message)``: every message to other nodes goes
  through it, ``emit`` included (after delivering locally); ``RedisSockets``
  forwards it to ``RedisChannel.notice`` (best effort, never waiting).
* ``AsyncPubSubManager._listen()``: the async generator ``_thread`` reads the other
  nodes' messages from; ours (``RedisChannel.listen``) reconnects every <= 1 s
  instead of up to 60 s.
* The pub/sub message ``AsyncPubSubManager.emit`` builds: relayed events are put
  on the channel by ``RedisChannel.message``/``publish`` (one pipeline a batch),
  not by ``emit``, so their messages must stay what ``_thread`` and
  ``_handle_emit`` of every node read.
* ``AsyncRedisManager`` attributes read by ours: ``host_id``, ``channel``; ``thread``,
  the listener task ``initialize`` starts, which ``RedisSockets.close`` cancels;
  ``is_connected``/``is_pre_connected``, which ``leave_room`` asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import inspect
import socket
import time
from typing import Any

import msgspec
import pytest
import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager

from roomcast.gateway import jsoncodec
from roomcast.gateway.delivery import Registry
from roomcast.gateway.redislink import MAX_BACKOFF, RedisChannel, RedisPublisher
from roomcast.gateway.sockets import RedisSockets
from roomcast.outbox.relay import Outgoing, PublishFailed

SOCKETS = "RedisSockets (src/gateway/sockets.py)"


def test_RedisSockets_hooks_are_checked_against_python_socketio_5_18():
    version = tuple(int(p) for p in importlib.metadata.version("python-socketio").split(".")[:2])
    assert version == (5, 18), (
        f"{SOCKETS} _handle_emit/_publish/_listen were checked against"
        f" python-socketio 5.18, not {version}: re-check them before raising the pin"
    )


def test_RedisSockets_handle_emit_is_where_a_broadcast_is_delivered_on_this_node():
    thread = inspect.getsource(AsyncPubSubManager._thread)
    assert "elif data.get('host_id') != self.host_id:" in thread, (
        f"{SOCKETS}._handle_emit: AsyncPubSubManager._thread no longer skips this node's"
        " own messages by host_id (the node delivered them already)"
    )
    assert "await self._handle_emit(data)" in thread, (
        f"{SOCKETS}._handle_emit: AsyncPubSubManager._thread no longer delivers another"
        " node's emit through self._handle_emit(message)"
    )
    emit = inspect.getsource(AsyncPubSubManager.emit)
    local = emit.find("await self._handle_emit(message)")
    remote = emit.find("await self._publish(message)")
    assert 0 <= local < remote, (
        f"{SOCKETS}._handle_emit/_publish: AsyncPubSubManager.emit no longer delivers"
        " locally through _handle_emit, then publishes through _publish(message)"
    )


def test_RedisSockets_handle_emit_decodes_data_as_python_socketio_does():
    # Ours repeats the decoding of upstream's _handle_emit (list of one → the value,
    # longer → a tuple, binary attachments); a change there must be looked at.
    digest = hashlib.sha256(inspect.getsource(AsyncPubSubManager._handle_emit).encode())
    assert digest.hexdigest() == (
        "4284671be955f644db57572ca19e27c79b0444f89efd4583dac5654650f42c78"
    ), f"{SOCKETS}._handle_emit: AsyncPubSubManager._handle_emit changed; re-check ours"


def test_RedisSockets_listen_is_what_the_listener_task_reads():
    assert "self._listen()" in inspect.getsource(AsyncPubSubManager._thread), (
        f"{SOCKETS}._listen: AsyncPubSubManager._thread no"
        " longer reads the other nodes' messages from self._listen()"
    )
    assert inspect.isasyncgenfunction(RedisSockets._listen)


def test_RedisSockets_reads_the_managers_attributes():
    manager = socketio.AsyncRedisManager("redis://127.0.0.1:1/0", channel="c", write_only=True)
    for name in ("host_id", "channel", "is_connected", "is_pre_connected"):
        assert hasattr(manager, name), f"{SOCKETS}: AsyncRedisManager.{name} is gone"


def test_RedisSockets_close_cancels_the_task_initialize_keeps_in_thread():
    source = inspect.getsource(AsyncPubSubManager.initialize)
    assert "self.thread = self.server.start_background_task(self._thread)" in source, (
        f"{SOCKETS}.close: AsyncPubSubManager.initialize no"
        " longer keeps the listener task in self.thread; close() would leave it running"
    )


async def test_RedisChannel_message_is_the_message_AsyncPubSubManager_emit_builds():
    """The message a relayed event goes out as is the one python-socketio's emit puts on
    the channel (so each node's manager reads it), field for field."""
    sent: list[dict[str, Any]] = []

    class Capture(socketio.AsyncRedisManager):  # type: ignore[misc]
        async def _handle_emit(self, message: dict[str, Any]) -> None:
            pass

        async def _publish(self, message: dict[str, Any]) -> None:
            sent.append(message)

    manager = Capture("redis://127.0.0.1:1/0", channel="roomcast", write_only=True)
    payload = msgspec.Raw(b'{"seq":3}')
    await manager.emit("room:updated", (payload, "7.1"), namespace="/", room="room:r")
    await manager.emit("room:updated", payload, namespace="/", room="room:r")
    channel = RedisChannel("redis://127.0.0.1:1/0", "roomcast", host_id=manager.host_id)
    assert sent == [
        channel.message("room:updated", (payload, "7.1"), "room:r"),
        channel.message("room:updated", payload, "room:r"),
    ]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _outgoing(seq: int, room_id: str = "r") -> Outgoing:
    return Outgoing(room_id, "room:updated", msgspec.Raw(b'{"seq":%d}' % seq), f"1.{seq}")


async def test_RedisPublisher_publish_raises_when_redis_did_not_take_it_and_backs_off():
    publisher = RedisPublisher(f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        started = time.monotonic()
        with pytest.raises(PublishFailed):
            await publisher.publish([_outgoing(1), _outgoing(2)])
        assert time.monotonic() - started < 2  # one try, no redis-py retries
        with pytest.raises(PublishFailed) as refused:  # within the backoff: not even tried
            await publisher.publish([_outgoing(3)])
        assert 0 < refused.value.retry_in <= MAX_BACKOFF
        assert publisher.link.publish_failures == 1
        assert publisher.link.status()["publishing"] is False
    finally:
        await publisher.close()


async def test_RedisSockets_reads_and_delivers_what_RedisPublisher_publishes(redis_url):
    """Through a real Redis: the relay's messages, read by our listener and handed by
    the node's manager to its delivery as python-socketio decodes them."""
    node = RedisSockets(redis_url, Registry(), channel="roomcast", json=jsoncodec)
    publisher = RedisPublisher(redis_url)
    delivered: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    subscribed = asyncio.Event()
    node.on_listening = subscribed.set

    async def deliver(
        event: str, data: Any, namespace: str, room: str, skip_sid: Any = None
    ) -> None:
        await delivered.put((event, data, namespace, room, skip_sid))

    node.delivery.deliver = deliver  # type: ignore[method-assign]

    async def listen() -> None:  # what AsyncPubSubManager._thread does with a message
        async for data in node._listen():
            message = jsoncodec.loads(data)
            assert message["host_id"] != node.host_id
            assert message["method"] == "emit"
            await node._handle_emit(message)

    task = asyncio.create_task(listen())
    try:
        async with asyncio.timeout(10):
            await subscribed.wait()
        await publisher.publish([_outgoing(7, "r1"), _outgoing(8, "r1")])
        async with asyncio.timeout(10):
            got = [await delivered.get(), await delivered.get()]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await publisher.close()
        await node.close()
    assert got == [
        ("room:updated", ({"seq": 7}, "1.7"), "/", "room:r1", None),
        ("room:updated", ({"seq": 8}, "1.8"), "/", "room:r1", None),
    ]
