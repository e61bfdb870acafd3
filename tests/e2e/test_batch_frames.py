"""`room:subscribe {batch: true}`: room events as `room:events` arrays, on the wire.

A plain python-socketio client (not RoomcastClient, which hides frames) records
every message, so these tests see the frames themselves: what they hold, how
the replay is paged, and that a relay batch published in one go is one frame.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from roomcast.domain import room
from roomcast.domain.state import UserRef
from roomcast.ids import uuid7
from roomcast.outbox import sql
from roomcast.outbox.store import EventStore, prepare

from ..conftest import RunningServer
from ..helpers import rename
from .support import create_room, rename_many, subscribe, user_id


@pytest.fixture
def raw(server: RunningServer, raw_sockets: Any) -> Any:
    """A raw Socket.IO client on the session's server, for a user: (client, its Wire)."""
    return lambda sub: raw_sockets(server, sub)


async def append_in_one_statement(
    pool: asyncpg.Pool, room_id: str, organizer: str, count: int
) -> None:
    """``count`` renames written behind the server's back as ONE append (so the relay
    finds them all in one batch), then the wake-up a commit sends."""
    store = EventStore(pool)
    loaded = await store.load(room_id)
    state, events = loaded.state, []
    actor = UserRef(id=organizer, name=None)
    for i in range(count):
        for event in room.decide(rename(actor, f"burst {i}"), state):
            state = room.evolve(state, event)
            events.append(event)
    await store.append(prepare(loaded, events, actor_id=organizer, new_event_id=uuid7))
    await pool.execute("SELECT pg_notify($1, '')", sql.NOTIFY_CHANNEL)


class TestBatchFrames:
    async def test_the_replay_comes_as_frames_of_a_page_each_then_live_as_frames(
        self, server, http, raw
    ):
        org = user_id()
        room_id = await create_room(http, server, org)
        probe, probed = await raw(org)
        await subscribe(probe, {"roomId": room_id})
        await rename_many(http, server, org, room_id, 600)  # head 601
        # Once the relay has published it all, no live duplicate can follow the replay.
        await probed.wait_for_seq(601)
        client, wire = await raw(org)
        ack = await subscribe(client, {"roomId": room_id, "lastSeq": 0, "batch": True})
        assert ack["headSeq"] == 601
        await wire.wait_for_seq(601)
        # The gateway reads the log in pages of 500: one frame per page.
        assert [len(f) for f in wire.frames] == [500, 101]
        await rename_many(http, server, org, room_id, 30)
        await wire.wait_for_seq(631)
        assert wire.seqs == list(range(1, 632))
        # Nothing came as a single room event: every one was in a frame.
        singles = [e for e, d in wire.messages if isinstance(d, dict) and "eventId" in d]
        assert singles == []
        first = wire.frames[0][0]
        assert first["type"] == "room:created"
        assert first["roomId"] == room_id
        assert {"eventId", "seq", "timestamp"} <= first.keys()
        whole = {"truncated": False, "nextAfter": 601}
        notice = {"roomId": room_id, "headSeq": 601, "replayed": 601, "replay": whole}
        assert ("room:subscribed", notice) in wire.messages

    async def test_a_relay_batch_published_in_one_go_is_one_frame(
        self, server, http, raw, server_pool
    ):
        org = user_id()
        room_id = await create_room(http, server, org)
        client, wire = await raw(org)
        await subscribe(client, {"roomId": room_id, "batch": True})
        await append_in_one_statement(server_pool, room_id, org, 50)
        await wire.wait_for_seq(51)
        assert [len(f) for f in wire.frames] == [50]
        assert wire.seqs == list(range(2, 52))

    async def test_batch_and_single_subscribers_of_one_room_get_the_same_stream(
        self, server, http, raw, server_pool
    ):
        org = user_id()
        room_id = await create_room(http, server, org)
        batched, batch_wire = await raw(org)
        single, single_wire = await raw(org)
        await subscribe(batched, {"roomId": room_id, "lastSeq": 0, "batch": True})
        await subscribe(single, {"roomId": room_id, "lastSeq": 0})
        await append_in_one_statement(server_pool, room_id, org, 20)
        await rename_many(http, server, org, room_id, 20)
        await batch_wire.wait_for_seq(41)
        await single_wire.wait_for_seq(41)
        assert batch_wire.delivered == single_wire.delivered == list(range(1, 42))
        assert single_wire.frames == []
        batched_payloads = [p for f in batch_wire.frames for p in f]
        single_payloads = [
            d for e, d in single_wire.messages if isinstance(d, dict) and "eventId" in d
        ]
        assert batched_payloads == single_payloads
        # The event name a single message carries is the payload's `type`.
        names = [e for e, d in single_wire.messages if isinstance(d, dict) and "eventId" in d]
        assert names == [p["type"] for p in batched_payloads]

    async def test_a_removed_batch_subscriber_gets_its_removal_and_nothing_after(
        self, server, http, raw
    ):
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        joined = await http.post(f"/api/rooms/{room_id}/participants", headers=server.auth(ann))
        part_id = joined.json()["data"]["participant"]["id"]
        client, wire = await raw(ann)
        watcher, watched = await raw(org)
        await subscribe(client, {"roomId": room_id, "lastSeq": 0, "batch": True})
        await subscribe(watcher, {"roomId": room_id, "lastSeq": 0, "batch": True})
        removed = await http.delete(
            f"/api/rooms/{room_id}/participants/{part_id}", headers=server.auth(org)
        )
        assert removed.status_code == 200
        await rename_many(http, server, org, room_id, 5, concurrency=1)
        await watched.wait_for_seq(8)
        assert wire.delivered == [1, 2, 3]
        assert max(wire.seqs) == 3
        assert wire.frames[-1][-1]["type"] == "participant:left"

    async def test_resubscribing_switches_between_frames_and_single_events(self, server, http, raw):
        org = user_id()
        room_id = await create_room(http, server, org)
        client, wire = await raw(org)
        await subscribe(client, {"roomId": room_id, "lastSeq": 0, "batch": True})
        await rename_many(http, server, org, room_id, 3, concurrency=1)
        await wire.wait_for_seq(4)
        await subscribe(client, {"roomId": room_id, "lastSeq": 4})  # batch off
        await rename_many(http, server, org, room_id, 3, concurrency=1)
        await wire.wait_for_seq(7)
        assert wire.delivered == list(range(1, 8))
        assert max(p["seq"] for f in wire.frames for p in f) == 4

    @pytest.mark.parametrize("flag", ["yes", 1, None])
    async def test_a_batch_flag_that_is_not_a_boolean_is_invalid_payload(
        self, server, http, raw, flag
    ):
        org = user_id()
        room_id = await create_room(http, server, org)
        client, _ = await raw(org)
        ack = await client.call("room:subscribe", {"roomId": room_id, "batch": flag}, timeout=30)
        assert ack["success"] is False
        assert ack["error"]["code"] == "INVALID_PAYLOAD"


class TestNoDuplicateAcrossTheSeam:
    @pytest.mark.parametrize("batch", [True, False], ids=["batch", "single"])
    async def test_writes_during_the_replay_arrive_once_each(self, server, http, raw, batch):
        """The replay reads events the relay may not have published yet; when the relay
        does publish them, the socket does not get them a second time (the floor)."""
        org = user_id()
        room_id = await create_room(http, server, org)
        await rename_many(http, server, org, room_id, 200)
        client, wire = await raw(org)
        writing = asyncio.create_task(rename_many(http, server, org, room_id, 100, concurrency=4))
        await subscribe(client, {"roomId": room_id, "lastSeq": 0, "batch": batch})
        await writing
        await wire.wait_for_seq(301)
        assert wire.seqs == list(range(1, 302))

    @pytest.mark.parametrize(
        "last_seq", [0, 2], ids=["own-join-inside: per event", "member-throughout: joined frames"]
    )
    async def test_a_participants_batch_replay_shows_what_their_single_one_shows(
        self, server, http, raw, last_seq
    ):
        """The joined-frame replay (a member throughout, ADR 0025) and the per-event
        one (their own join inside the range) each show what one message per event
        shows, with the same payloads."""
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        joined = await http.post(f"/api/rooms/{room_id}/participants", headers=server.auth(ann))
        assert joined.status_code == 201
        await rename_many(http, server, org, room_id, 4, concurrency=1)  # head 6
        probe, probed = await raw(org)
        await subscribe(probe, {"roomId": room_id})
        batched, batch_wire = await raw(ann)
        single, single_wire = await raw(ann)
        await subscribe(batched, {"roomId": room_id, "lastSeq": last_seq, "batch": True})
        await subscribe(single, {"roomId": room_id, "lastSeq": last_seq})
        await rename_many(http, server, org, room_id, 1, concurrency=1)  # seq 7, live
        await probed.wait_for_seq(7)
        await batch_wire.wait_for_seq(7)
        await single_wire.wait_for_seq(7)
        assert batch_wire.delivered == single_wire.delivered
        assert batch_wire.delivered[0] == last_seq + 1
        assert batch_wire.delivered[-1] == 7
        batched_payloads = [p for f in batch_wire.frames for p in f]
        single_payloads = [
            d for e, d in single_wire.messages if isinstance(d, dict) and "eventId" in d
        ]
        assert batched_payloads == single_payloads
        assert all(p.get("replayed") is True for p in batched_payloads if p["seq"] <= 6)
