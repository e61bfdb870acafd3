"""A relay batch goes to Redis as one pipeline, and is acknowledged only when Redis took
all of it: real PostgreSQL, a real redis-server, a real relay and a node's manager.

A cut in the middle of a pipeline is made by a TCP proxy between the relay and
Redis that forwards the pipeline's bytes up to one event's payload and then
closes both sides: Redis runs the PUBLISHes before the cut, never the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec
import pytest
from redis import asyncio as aioredis
from redis.asyncio.client import Pipeline

from roomcast.gateway import jsoncodec
from roomcast.gateway.delivery import Registry
from roomcast.gateway.publisher import NodePublisher
from roomcast.gateway.redislink import RedisPublisher
from roomcast.gateway.sockets import RedisSockets
from roomcast.outbox.relay import Outgoing, PublishFailed, Relay
from roomcast.service.rooms import RoomService

from ..helpers import rename, user
from ..serve_process import free_port
from .test_relay import new_room

alice = user("alice")


class CutOnce:
    """A TCP proxy to Redis that, once armed, cuts the connection that sends ``marker``:
    the whole commands before the one holding it reach Redis, that one and the rest
    do not, and the client sees its connection closed before any answer."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._marker: bytes | None = None
        self.cut = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    def arm(self, marker: bytes) -> None:
        self._marker = marker

    async def close(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers |= {writer, up_writer}
        back = asyncio.create_task(self._pipe(up_reader, writer))
        try:
            while chunk := await reader.read(1 << 20):
                marker = self._marker
                at = chunk.find(marker) if marker else -1
                if at >= 0:
                    self._marker = None  # one shot
                    back.cancel()  # no answer reaches the client any more
                    # Back to the start of the command holding the marker (RESP: "*3").
                    up_writer.write(chunk[: chunk.rfind(b"*3\r\n", 0, at)])
                    await up_writer.drain()
                    self.cut.set()
                    break
                up_writer.write(chunk)
                await up_writer.drain()
        finally:
            back.cancel()
            for w in (writer, up_writer):
                w.close()
                self._writers.discard(w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()


class Node:
    """A gateway node's Redis manager, listening as python-socketio's ``_thread`` does;
    ``seqs`` is what its delivery delivered (after dropping duplicates by seq)."""

    def __init__(self, redis_url: str) -> None:
        self.sockets = RedisSockets(redis_url, Registry(), json=jsoncodec)
        self.seqs: list[int] = []
        self.received = 0
        self.changed = asyncio.Condition()
        self.listening = asyncio.Event()
        self.sockets.on_listening = self.listening.set

    def follow(self, room_id: str) -> None:
        self.sockets.delivery.feed.listen(f"room:{room_id}", self._record)

    def _record(self, event: str, payload: Any, seq: int) -> None:
        self.seqs.append(seq)

    async def run(self) -> None:
        async for data in self.sockets._listen():
            message = jsoncodec.loads(data)
            if message.get("host_id") != self.sockets.host_id and message["method"] == "emit":
                await self.sockets._handle_emit(message)
            async with self.changed:
                self.received += 1
                self.changed.notify_all()

    async def wait_for(self, predicate: Any, within: float = 30) -> None:
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(predicate)


@contextlib.asynccontextmanager
async def listening(node: Node) -> AsyncIterator[None]:
    task = asyncio.create_task(node.run())
    try:
        async with asyncio.timeout(10):
            await node.listening.wait()
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await node.sockets.close()


class CountedPipelines:
    """Every redis-py pipeline executed, as the number of commands it sent."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        real = Pipeline.execute

        async def execute(pipe: Pipeline, *args: Any, **kwargs: Any) -> Any:
            self.sizes.append(len(pipe.command_stack))
            return await real(pipe, *args, **kwargs)

        monkeypatch.setattr(Pipeline, "execute", execute)


def _outgoing(seq: int) -> Outgoing:
    return Outgoing("r", "room:updated", msgspec.Raw(b'{"seq":%d}' % seq), f"4.{seq}")


async def test_a_relay_batch_is_published_as_one_pipeline_in_order(redis_url, monkeypatch):
    pipelines = CountedPipelines(monkeypatch)
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe("roomcast")
    publisher = RedisPublisher(redis_url)
    try:
        await publisher.publish([_outgoing(seq) for seq in range(1, 51)])
        heard: list[Any] = []
        async with asyncio.timeout(10):
            while len(heard) < 50:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    heard.append(jsoncodec.loads(message["data"]))
    finally:
        await publisher.close()
        await pubsub.aclose()
        await client.aclose()
    assert pipelines.sizes == [50]  # one round trip, not 50
    assert [m["data"] for m in heard] == [[{"seq": s}, f"4.{s}"] for s in range(1, 51)]
    assert {m["method"] for m in heard} == {"emit"}
    assert {m["room"] for m in heard} == {"room:r"}


@pytest.fixture
async def quiet_outbox(pool: asyncpg.Pool) -> None:
    await pool.execute("DELETE FROM outbox")


@pytest.mark.usefixtures("quiet_outbox")
async def test_a_batch_cut_mid_pipeline_keeps_its_rows_and_a_node_gets_them_in_seq_order(
    own_database_url, pool, store, redis_url, monkeypatch
):
    service = RoomService(store)
    room_id = await new_room(service)
    for i in range(5):  # seqs 2..6, committed before the relay starts: one batch
        await service.execute(room_id, rename(alice, f"cut {i}"))
    proxy = CutOnce(redis_url)
    through = await proxy.start()
    proxy.arm(b'"name":"cut 2"')  # seq 4's payload: 1..3 reach Redis, 4..6 do not
    pipelines = CountedPipelines(monkeypatch)
    node = Node(redis_url)
    node.follow(room_id)
    publisher = RedisPublisher(through)
    relay = Relay(own_database_url, publisher, poll_interval=0.05, partitions=1)
    async with listening(node):
        task = asyncio.create_task(relay.run())
        try:
            async with asyncio.timeout(30):
                await proxy.cut.wait()
            # The relay tries the whole batch again (after the publisher's backoff),
            # and the node drops the three it has by seq.
            await node.wait_for(lambda: node.seqs == [1, 2, 3, 4, 5, 6])
            async with asyncio.timeout(30):
                while await pool.fetchval(  # noqa: ASYNC110 (a table: nothing to await)
                    "SELECT count(*) FROM outbox WHERE stream_id = $1", room_id
                ):
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await publisher.close()
            await proxy.close()
    assert relay.stats.publish_failures == 6  # the whole batch, not the three after the cut
    assert relay.stats.published == 6
    assert relay.stats.unacked == 0
    assert pipelines.sizes[:2] == [6, 6]  # the cut batch, then the same batch again
    assert node.received >= 9  # 1..3 twice: duplicates reached the node, not its clients
    assert node.seqs == [1, 2, 3, 4, 5, 6]


async def test_a_node_delivers_a_batch_to_its_own_sockets_and_to_redis_in_one_pipeline(
    redis_url, monkeypatch
):
    """The relay's publisher inside a node: its delivery gets every event in order, and
    the other nodes get the batch through one pipeline."""
    pipelines = CountedPipelines(monkeypatch)
    here = RedisSockets(redis_url, Registry(), json=jsoncodec)
    here_seqs: list[int] = []
    here.delivery.feed.listen("room:r", lambda event, payload, seq: here_seqs.append(seq))
    other = Node(redis_url)
    other.follow("r")
    publisher = NodePublisher(here.delivery, here.redis_channel)
    try:
        async with listening(other):
            await publisher.publish([_outgoing(seq) for seq in range(1, 21)])
            await other.wait_for(lambda: other.seqs == list(range(1, 21)))
    finally:
        await here.close()
    assert here_seqs == list(range(1, 21))
    assert pipelines.sizes == [20]


async def test_a_node_whose_redis_is_down_still_delivers_to_its_sockets_and_says_so():
    here = RedisSockets(f"redis://127.0.0.1:{free_port()}/0", Registry(), json=jsoncodec)
    here_seqs: list[int] = []
    here.delivery.feed.listen("room:r", lambda event, payload, seq: here_seqs.append(seq))
    publisher = NodePublisher(here.delivery, here.redis_channel)
    try:
        with pytest.raises(PublishFailed):
            await publisher.publish([_outgoing(seq) for seq in range(1, 6)])
        # The relay tries the batch again: this node drops the copies by seq.
        with pytest.raises(PublishFailed):
            await publisher.publish([_outgoing(seq) for seq in range(1, 8)])
    finally:
        await here.close()
    assert here_seqs == [1, 2, 3, 4, 5, 6, 7]
