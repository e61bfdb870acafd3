"""A refusal or a no-op is never decided on a state another process has moved past.

Two nodes on one database each cache the rooms they served. Node B caches a
room, node A (or another process: the relay, a writer of notifications)
appends to it, then B is asked for something that its stale state would
refuse or call a no-op. B must confirm against the stream's head and decide
again on the current state: the 5d case (a rename to the name B remembers,
answered 200 with ``events: []`` while the room keeps A's name) is a lost
update reported as success.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest

from roomcast.config import Settings
from roomcast.outbox.database import connect
from roomcast.outbox.store import EventStore
from roomcast.service.notifications import NotificationService
from roomcast.service.sources import Sources

from ..conftest import JWT_SECRET, RunningServer, redis_nodes, run_server
from .support import create_room, join, user_id
from .test_notifications import Inbox, active_room_with, draw
from .test_relay_processes import RelayProcess


@pytest.fixture(scope="module")
def nodes(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    with redis_nodes(own_database_url, redis_url, tmp_path_factory, {}, {}) as (a, b):
        yield a, b


@pytest.fixture
async def clients(
    nodes: tuple[RunningServer, RunningServer],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    a, b = nodes
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        yield on_a, on_b


@pytest.fixture
async def other_writer(own_database_url: str) -> AsyncIterator[NotificationService]:
    """A third process's notification writer (its own pool and cache), as a relay's is."""
    pool = await connect(own_database_url, max_size=2)
    try:
        yield NotificationService(EventStore(pool), Sources())
    finally:
        await pool.close()


async def test_a_stale_no_op_rename_is_decided_again_at_the_head(nodes, clients):
    a, b = nodes
    on_a, on_b = clients
    org = user_id()
    for _ in range(10):
        room_id = await create_room(on_b, b, org, name="orig")  # B caches "orig"
        changed = await on_a.patch(
            f"/api/rooms/{room_id}", json={"name": "changed"}, headers=a.auth(org)
        )
        assert changed.status_code == 200, changed.text
        back = await on_b.patch(f"/api/rooms/{room_id}", json={"name": "orig"}, headers=b.auth(org))
        assert back.status_code == 200, back.text
        assert [e["event"] for e in back.json()["data"]["events"]] == ["room:updated"]
        room = await on_a.get(f"/api/rooms/{room_id}", headers=a.auth(org))
        assert room.json()["data"]["room"]["name"] == "orig"


async def test_a_leave_after_a_join_elsewhere_is_not_refused(nodes, clients):
    a, b = nodes
    on_a, on_b = clients
    org, ann = user_id(), user_id()
    for _ in range(10):
        room_id = await create_room(on_b, b, org)  # B caches a room without ann
        await join(on_a, a, room_id, ann)
        left = await on_b.delete(f"/api/rooms/{room_id}/participants/me", headers=b.auth(ann))
        assert left.status_code == 200, left.text
        assert [e["event"] for e in left.json()["data"]["events"]] == ["participant:left"]


async def test_a_draw_after_a_join_elsewhere_finds_the_participant(nodes, clients):
    a, b = nodes
    on_a, on_b = clients
    org, ann = user_id(), user_id()
    for _ in range(10):
        room_id, prize = await active_room_with(on_b, b, org)  # B: active, nobody eligible
        await join(on_a, a, room_id, ann)
        winner = await draw(on_b, b, org, room_id, prize)
        assert winner["participant"]["user"]["id"] == ann


async def test_mark_read_finds_a_notification_another_process_wrote(
    nodes, clients, other_writer: NotificationService
):
    _, b = nodes
    _, on_b = clients
    bob = user_id()
    for i in range(10):
        await other_writer.notify(
            bob, type="t", title="first", message="m", data={}, once_for=f"first:{bob}:{i}"
        )
        listed = await on_b.get("/api/notifications", headers=b.auth(bob))  # B caches the inbox
        assert listed.status_code == 200
        outcome = await other_writer.notify(
            bob, type="t", title="second", message="m", data={}, once_for=f"second:{bob}:{i}"
        )
        [received] = outcome.result.events
        notification_id = _payload_id(received.payload)
        read = await on_b.post(f"/api/notifications/{notification_id}/read", headers=b.auth(bob))
        assert read.status_code == 200, read.text


def _payload_id(raw: msgspec.Raw) -> str:
    return str(msgspec.json.decode(raw)["id"])


@pytest.fixture
async def node_without_relay(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    settings = Settings(
        database_url=own_database_url,
        redis_url=redis_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("no-relay-node")),
        relay=False,
    )
    with run_server(settings) as running:
        yield running


async def test_one_node_with_the_relay_as_its_own_process(
    node_without_relay: RunningServer, own_database_url: str, redis_url: str
):
    """`roomcast relay` writes the winners' notifications; the node's cached inbox is
    behind it, and a mark-read of the new one must still find it."""
    server = node_without_relay
    org, bob = user_id(), user_id()
    relay = await RelayProcess(own_database_url, redis_url).start()
    inbox = Inbox(server, bob)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            room_id, prize = await active_room_with(http, server, org, bob)
            await inbox.connect()
            await draw(http, server, org, room_id, prize)
            await inbox.wait_for_seq(1)
            listed = await http.get("/api/notifications", headers=server.auth(bob))
            assert listed.json()["data"]["headSeq"] == 1  # the node now caches seq 1
            other_room, other_prize = await active_room_with(http, server, org, bob)
            await draw(http, server, org, other_room, other_prize)
            await inbox.wait_for_seq(2)  # written by the relay process
            second = inbox.events[-1][1]["id"]
            read = await http.post(f"/api/notifications/{second}/read", headers=server.auth(bob))
            assert read.status_code == 200, read.text
            assert read.json()["data"]["headSeq"] == 3
    finally:
        await inbox.sio.disconnect()
        await relay.kill()


async def test_a_refusal_on_a_current_cache_stays_a_refusal(nodes, clients, own_database_url: str):
    _, b = nodes
    _, on_b = clients
    org, ann = user_id(), user_id()
    room_id = await create_room(on_b, b, org)
    left = await on_b.delete(f"/api/rooms/{room_id}/participants/me", headers=b.auth(ann))
    assert (left.status_code, left.json()["error"]["code"]) == (409, "NOT_PARTICIPANT")
    conn = await asyncpg.connect(own_database_url)
    try:
        version = await conn.fetchval("SELECT version FROM streams WHERE stream_id = $1", room_id)
    finally:
        await conn.close()
    assert version == 1  # nothing was written
