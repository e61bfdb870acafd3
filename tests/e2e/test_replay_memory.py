"""Replays served from a node's latest events in memory, the rest from PostgreSQL.

Whatever part comes from where, a subscribe with ``lastSeq`` delivers exactly
the events after it, once each, in order: on a node whose memory holds only
the last few events of a room, and on a node that learned the events through
Redis (two nodes, one database of their own: their relays compete for the
publisher lock with nobody else's).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from roomcast.metrics import REPLAYED_EVENTS

from ..conftest import RunningServer, redis_nodes
from .support import Wire, create_room, rename_many, subscribe, user_id

HELD = 5


@pytest.fixture(scope="module")
def nodes(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two nodes sharing Redis and a database of their own; B keeps only HELD events a room."""
    with redis_nodes(
        own_database_url,
        redis_url,
        tmp_path_factory,
        {"rest_rate_limit": 0},
        {"rest_rate_limit": 0, "replay_cache_events": HELD},
    ) as (a, b):
        yield a, b


def replayed() -> dict[str, float]:
    return {s: REPLAYED_EVENTS.labels(s)._value.get() for s in ("memory", "database")}


async def history(server: RunningServer, watch_on: RunningServer, raw_sockets, renames: int):
    """A room with ``renames`` renames after its creation, published to ``watch_on``."""
    org = user_id()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        room_id = await create_room(http, server, org)
        watcher, watched = await raw_sockets(watch_on, org)
        await subscribe(watcher, {"roomId": room_id})
        await rename_many(http, server, org, room_id, renames)
    head = renames + 1
    await watched.wait_for_seq(head)  # the node has delivered (and kept) all of it
    return org, room_id, head


async def replay_from(
    node: RunningServer,
    raw_sockets: Any,
    org: str,
    room_id: str,
    last_seq: int,
    head: int,
    *,
    batch: bool,
) -> Wire:
    """A new socket of ``org`` on ``node`` subscribes from ``last_seq``; its wire once the
    head has arrived."""
    client, wire = await raw_sockets(node, org)
    ack = await subscribe(client, {"roomId": room_id, "lastSeq": last_seq, "batch": batch})
    assert ack["headSeq"] == head
    await wire.wait_for_seq(head)
    return wire


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "single"])
async def test_older_events_are_read_and_the_latest_come_from_memory(nodes, raw_sockets, batch):
    node_a, node_b = nodes
    org, room_id, head = await history(node_a, node_b, raw_sockets, 20)
    before = replayed()
    wire = await replay_from(node_b, raw_sockets, org, room_id, 3, head, batch=batch)
    assert wire.seqs == list(range(4, head + 1))
    now = replayed()
    assert now["memory"] - before["memory"] == HELD
    assert now["database"] - before["database"] == head - 3 - HELD


async def test_a_node_replays_from_what_redis_brought_it(nodes, raw_sockets):
    node_a, node_b = nodes
    org, room_id, head = await history(node_b, node_a, raw_sockets, 30)
    before = replayed()
    wire = await replay_from(node_a, raw_sockets, org, room_id, 10, head, batch=True)
    assert wire.seqs == list(range(11, head + 1))
    assert replayed()["memory"] - before["memory"] == head - 10
    # The same events as the log: the ids node A's store answers, in the same order.
    async with httpx.AsyncClient(base_url=node_a.url, timeout=30) as http:
        response = await http.get(
            f"/api/rooms/{room_id}/events", params={"after": 10}, headers=node_a.auth(org)
        )
    assert response.status_code == 200, response.text
    logged = [e["payload"]["eventId"] for e in response.json()["data"]["events"]]
    assert [p["eventId"] for f in wire.frames for p in f] == logged
