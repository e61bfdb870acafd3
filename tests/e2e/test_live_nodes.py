"""Presence and typing across two gateway nodes sharing Redis (and one database).

Notices cross nodes through Redis like room events do, and the presence state
is shared through Redis (gateway/redis_presence.py): several tabs and several
nodes count once, and a node whose heartbeat expired drops out.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from roomcast.gateway.redis_presence import NODES

from ..conftest import RunningServer, redis_nodes
from .test_live import Peer, create_room, join, user_id


@pytest.fixture(scope="module")
def nodes(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    with redis_nodes(own_database_url, redis_url, tmp_path_factory, {}, {}) as (a, b):
        yield a, b


@pytest.fixture
async def two(nodes: tuple[RunningServer, RunningServer]) -> AsyncIterator[list[Peer]]:
    opened: list[Peer] = []
    yield opened
    for peer in opened:
        await peer.close()


async def online(peer: Peer, room_id: str) -> list[str]:
    listed = await peer.ok("presence:get_online", {"roomId": room_id})
    return [u["id"] for u in listed["users"]]


async def test_notices_cross_nodes_and_presence_is_the_cluster_s(nodes, two):
    node_a, node_b = nodes
    org, ann = user_id(), user_id()
    async with httpx.AsyncClient(base_url=node_a.url, timeout=30) as http:
        room_id = await create_room(http, node_a, org)
        part_id = await join(http, node_a, room_id, ann)

        watcher = await Peer(node_a, org).connect()
        two.append(watcher)
        remote = await Peer(node_b, ann).connect()
        two.append(remote)
        await watcher.ok("room:subscribe", {"roomId": room_id})
        assert (await watcher.next("presence:user_online"))["userId"] == org
        await remote.ok("room:subscribe", {"roomId": room_id})
        assert (await watcher.next("presence:user_online"))["userId"] == ann  # via Redis

        await remote.ok("typing:start", {"roomId": room_id})
        assert (await watcher.next("typing:user_typing"))["userId"] == ann

        # Both nodes list both users, the earliest first.
        assert await online(watcher, room_id) == [org, ann]
        assert await online(remote, room_id) == [org, ann]

        # Removal on node A's REST; the eviction happens on node B, whose notices
        # (typing stopped, then offline) reach node A through Redis.
        response = await http.delete(
            f"/api/rooms/{room_id}/participants/{part_id}", headers=node_a.auth(org)
        )
        assert response.status_code == 200
        assert (await watcher.next("typing:user_stopped"))["userId"] == ann
        assert (await watcher.next("presence:user_offline"))["userId"] == ann
        assert await online(watcher, room_id) == [org]


async def test_a_user_on_both_nodes_is_online_once_until_their_last_tab_leaves(nodes, two):
    node_a, node_b = nodes
    org = user_id()
    async with httpx.AsyncClient(base_url=node_a.url, timeout=30) as http:
        room_id = await create_room(http, node_a, org)
    here = await Peer(node_a, org).connect()
    there = await Peer(node_b, org).connect()
    watcher = await Peer(node_a, org).connect()
    two.extend([here, there, watcher])
    await watcher.ok("room:subscribe", {"roomId": room_id})
    assert (await watcher.next("presence:user_online"))["userId"] == org
    await here.ok("room:subscribe", {"roomId": room_id})
    await there.ok("room:subscribe", {"roomId": room_id})  # node B: not a new user
    assert await online(there, room_id) == [org]
    await watcher.ok("room:unsubscribe", {"roomId": room_id})
    await here.ok("room:unsubscribe", {"roomId": room_id})
    # Still online through node B: a notice would be wrong, the list says so.
    assert await online(there, room_id) == [org]
    assert watcher.pending("presence:user_offline") == []
    await there.ok("room:unsubscribe", {"roomId": room_id})
    assert await online(here, room_id) == []


async def test_a_node_whose_heartbeat_expired_drops_out(nodes, two, redis_url):
    node_a, _ = nodes
    org, ghost_user = user_id(), user_id()
    async with httpx.AsyncClient(base_url=node_a.url, timeout=30) as http:
        room_id = await create_room(http, node_a, org)
    peer = await Peer(node_a, org).connect()
    two.append(peer)
    await peer.ok("room:subscribe", {"roomId": room_id})
    client = aioredis.Redis.from_url(redis_url)
    ghost = f"ghost-{user_id()}"
    try:
        # A node that served ghost_user, then crashed: its entry stays, its heartbeat runs out.
        await client.zadd(NODES, {ghost: time.time() + 60})
        entry = (
            f'{{"id":"{ghost_user}","name":"Ghost","avatar":null,'
            '"connectedAt":"2026-01-01T00:00:00Z"}'
        )
        await client.hset(f"roomcast:presence:{room_id}", f"{ghost}\t{ghost_user}", entry)
        assert await online(peer, room_id) == [ghost_user, org]
        await client.zadd(NODES, {ghost: time.time() - 1})  # as `ttl` seconds after the crash
        assert await online(peer, room_id) == [org]
        assert not await client.hexists(f"roomcast:presence:{room_id}", f"{ghost}\t{ghost_user}")
    finally:
        await client.zrem(NODES, ghost)
        await client.aclose()
