"""Presence and typing across two gateway nodes sharing Redis (and one database).

Notices cross nodes through Redis like room events do; the presence *state* is
per node today (docs/protocol.md, Presence → Several nodes), which the last
test pins down so that a Redis-backed store shows up as a deliberate change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

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


async def test_notices_cross_nodes_and_presence_state_stays_per_node(nodes, two):
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

        # Per node today: node A knows only its own socket's user.
        listed = await watcher.ok("presence:get_online", {"roomId": room_id})
        assert [u["id"] for u in listed["users"]] == [org]
        listed = await remote.ok("presence:get_online", {"roomId": room_id})
        assert [u["id"] for u in listed["users"]] == [ann]

        # Removal on node A's REST; the eviction happens on node B, whose notices
        # (typing stopped, then offline) reach node A through Redis.
        response = await http.delete(
            f"/api/rooms/{room_id}/participants/{part_id}", headers=node_a.auth(org)
        )
        assert response.status_code == 200
        assert (await watcher.next("typing:user_stopped"))["userId"] == ann
        assert (await watcher.next("presence:user_offline"))["userId"] == ann
