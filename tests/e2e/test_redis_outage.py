"""Two gateway nodes, a relay of its own (`roomcast relay`, a subprocess) and a Redis of
this module's own, SIGKILLed and restarted while commands run.

Nothing is lost between nodes whatever Redis does: the relay keeps what Redis did
not take, and each node checks its rooms against the log's heads and refills its
sockets (gateway/roomwatch.py). A participant removed while Redis is down gets
nothing after their removal on the other node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import socketio

from ..conftest import RunningServer, redis_nodes
from ..redis_server import EmbeddedRedis
from .support import Wire, create_room, join, rename_many, subscribe, user_id
from .test_relay_processes import RelayProcess

CHECK_SECONDS = 0.5


@pytest.fixture(scope="module")
def nodes(
    own_database_url: str, own_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    extra = {"relay": False, "position_check_seconds": CHECK_SECONDS, "rest_rate_limit": 0}
    with redis_nodes(own_database_url, own_redis.url, tmp_path_factory, extra, extra) as (a, b):
        yield a, b


@pytest.fixture
async def relay(own_database_url: str, own_redis: EmbeddedRedis) -> AsyncIterator[RelayProcess]:
    process = await RelayProcess(own_database_url, own_redis.url).start()
    try:
        async with asyncio.timeout(60):
            await process.active.wait()
        yield process
    finally:
        await process.kill()


@pytest.fixture
async def sockets() -> AsyncIterator[Any]:
    opened: list[socketio.AsyncClient] = []

    async def make(server: RunningServer, sub: str, room_id: str, *, batch: bool = False) -> Wire:
        client = socketio.AsyncClient(reconnection=False)
        wire = Wire()
        client.on("*", wire.record)
        await client.connect(
            server.url, auth={"token": server.token(sub)}, transports=["websocket"]
        )
        opened.append(client)
        await subscribe(client, {"roomId": room_id, "lastSeq": 0, "batch": batch})
        return wire

    yield make
    for client in opened:
        await client.disconnect()


async def head(http: httpx.AsyncClient, server: RunningServer, org: str, room_id: str) -> int:
    response = await http.get(f"/api/rooms/{room_id}", headers=server.auth(org))
    assert response.status_code == 200, response.text
    return int(response.headers["etag"].strip('"'))


async def redis_health(http: httpx.AsyncClient, server: RunningServer) -> dict[str, Any]:
    response = await http.get("/health")
    assert response.status_code == 200, response.text  # Redis down is not a 503
    redis: dict[str, Any] = response.json()["node"]["redis"]
    return redis


async def test_redis_killed_while_commands_run_loses_nothing_and_evicts_on_every_node(
    nodes, relay, sockets, own_redis
):
    node_a, node_b = nodes
    org, ann = user_id(), user_id()
    async with (
        httpx.AsyncClient(base_url=node_a.url, timeout=30) as http,
        httpx.AsyncClient(base_url=node_b.url, timeout=30) as http_b,
    ):
        room_id = await create_room(http, node_a, org)
        part_id = await join(http, node_a, room_id, ann)
        quiet_id = await create_room(http, node_a, org, name="Quiet")
        watchers = [
            await sockets(node_a, org, room_id),
            await sockets(node_a, org, room_id, batch=True),
            await sockets(node_b, org, room_id),
            await sockets(node_b, org, room_id, batch=True),
        ]
        removed = await sockets(node_b, ann, room_id)
        quiet_b = await sockets(node_b, org, quiet_id)
        await rename_many(http, node_a, org, room_id, 20, 2)
        for wire in [*watchers, removed]:
            await wire.wait_for_seq(22, within=30)

        own_redis.kill()
        # While Redis is down: commands keep running, a participant is removed, and a
        # quiet room's last event is written. Node B hears none of it through Redis.
        writing = asyncio.create_task(rename_many(http, node_a, org, room_id, 40, 2))
        response = await http.delete(
            f"/api/rooms/{room_id}/participants/{part_id}", headers=node_a.auth(org)
        )
        assert response.status_code == 200, response.text
        left_seq = response.json()["data"]["version"]
        response = await http.patch(
            f"/api/rooms/{quiet_id}", json={"name": "last words"}, headers=node_a.auth(org)
        )
        assert response.status_code == 200, response.text
        quiet_head = response.json()["data"]["version"]
        written = time.monotonic()
        await quiet_b.wait_for_seq(quiet_head, within=2 * 2 * CHECK_SECONDS + 1)
        repaired_while_down = time.monotonic() - written
        assert (await redis_health(http_b, node_b))["ok"] is False
        await writing
        await asyncio.sleep(max(0.0, 5 - (time.monotonic() - written)))  # Redis stays down 5 s

        own_redis.restart()
        restarted = time.monotonic()
        await rename_many(http, node_a, org, room_id, 10, 2)
        final = await head(http, node_a, org, room_id)  # then the room goes quiet
        last_write = time.monotonic()
        for wire in watchers:
            await wire.wait_for_seq(final, within=2.0)
        caught_up = time.monotonic() - restarted
        after_last_write = time.monotonic() - last_write
        async with asyncio.timeout(10):
            # /health has no event to await: ask until the listener is back.
            while not (await redis_health(http_b, node_b))["ok"]:  # noqa: ASYNC110
                await asyncio.sleep(0.1)

    print(f"quiet room repaired while Redis was down in {repaired_while_down:.2f} s")
    print(
        f"every client at the head {caught_up:.2f} s after Redis restarted, "
        f"{after_last_write:.2f} s after the last write"
    )
    for wire in watchers:
        assert wire.seqs == list(range(1, final + 1))  # each once, in order
    assert quiet_b.seqs == list(range(1, quiet_head + 1))
    # The removed participant: everything up to their removal, nothing after, and told.
    assert removed.seqs == list(range(1, left_seq + 1))
    assert ("room:unsubscribed", {"roomId": room_id, "reason": "not_a_member"}) in removed.messages
