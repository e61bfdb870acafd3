"""The append guarantees of docs/guarantees.md, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from roomcast.domain import room
from roomcast.domain.errors import ErrorCode, IdempotencyKeyReused, VersionConflict
from roomcast.ids import uuid7
from roomcast.outbox import codec
from roomcast.outbox.database import connect
from roomcast.outbox.errors import StaleVersion
from roomcast.outbox.store import EventStore, prepare
from roomcast.service.rooms import Idempotency, RoomService

from ..helpers import create_room, rename, unique, user

alice = user("alice")


async def _rows(pool: asyncpg.Pool, room_id: str) -> tuple[list[int], list[int]]:
    events = await pool.fetch("SELECT seq FROM events WHERE stream_id = $1 ORDER BY seq", room_id)
    outbox = await pool.fetch("SELECT seq FROM outbox WHERE stream_id = $1 ORDER BY seq", room_id)
    return [r["seq"] for r in events], [r["seq"] for r in outbox]


async def _new_room(service: RoomService) -> str:
    room_id = unique("room")
    await service.execute(room_id, create_room(room_id, alice))
    return room_id


class TestOneTransaction:
    async def test_an_append_writes_events_outbox_rows_and_the_head_together(self, pool, store):
        service = RoomService(store)
        room_id = await _new_room(service)
        outcome = await service.execute(room_id, rename(alice, "Renamed"))

        assert outcome.result.version == 2
        assert await _rows(pool, room_id) == ([1, 2], [1, 2])
        assert await store.head(room_id) == 2
        payload = outcome.result.events[0].payload
        assert b'"seq":2' in bytes(payload)
        assert b'"type":"room:updated"' in bytes(payload)

    async def test_a_failed_append_leaves_no_event_no_outbox_row_and_no_hole(self, pool, store):
        """The statement fails half-way (a duplicate event id): nothing of it remains."""
        service = RoomService(store)
        room_id = await _new_room(service)
        existing = await pool.fetchval("SELECT event_id FROM events WHERE stream_id = $1", room_id)
        loaded = await store.load(room_id)
        events = room.decide(rename(alice, "never"), loaded.state)
        pending = prepare(loaded, events, actor_id=alice.id, new_event_id=lambda: existing)

        with pytest.raises(StaleVersion):
            await store.append(pending)

        assert await _rows(pool, room_id) == ([1], [1])
        assert await store.head(room_id) == 1
        await service.execute(room_id, rename(alice, "after the failure"))
        assert await _rows(pool, room_id) == ([1, 2], [1, 2])

    async def test_an_append_on_a_stale_version_writes_nothing(self, pool, store):
        room_id = await _new_room(RoomService(store))
        stale = await store.load(room_id)
        await store.append(
            prepare(
                stale,
                room.decide(rename(alice, "a"), stale.state),
                actor_id=alice.id,
                new_event_id=uuid7,
            )
        )
        second = prepare(
            stale,
            room.decide(rename(alice, "b"), stale.state),
            actor_id=alice.id,
            new_event_id=uuid7,
        )
        with pytest.raises(StaleVersion):
            await store.append(second)
        assert await _rows(pool, room_id) == ([1, 2], [1, 2])


class TestDenseSequence:
    async def test_concurrent_commands_from_several_nodes_get_seq_1_to_n(self, own_database_url):
        """60 commands on one room from 4 independent services (own pool, own cache, like 4
        nodes) racing: each is applied once, seqs are exactly 1..61, none lost."""
        pools = [await connect(own_database_url, max_size=4) for _ in range(4)]
        try:
            services = [RoomService(EventStore(p)) for p in pools]
            room_id = await _new_room(services[0])
            results = await asyncio.gather(
                *(services[i % 4].execute(room_id, rename(alice, f"name {i}")) for i in range(60))
            )
            seqs, outbox = await _rows(pools[0], room_id)
            versions = sorted(r.result.version for r in results)
        finally:
            for p in pools:
                await p.close()
        assert seqs == list(range(1, 62))
        assert outbox == seqs
        assert versions == list(range(2, 62))

    async def test_the_hash_chain_links_every_event_to_the_previous_one(self, pool, store):
        service = RoomService(store)
        room_id = await _new_room(service)
        for i in range(3):
            await service.execute(room_id, rename(alice, f"n{i}"))
        rows = await pool.fetch(
            "SELECT * , data::text AS body FROM events WHERE stream_id = $1 ORDER BY seq", room_id
        )
        prev = codec.ZERO_HASH
        for row in rows:
            canonical = codec.canonical_bytes(
                stream_id=room_id,
                seq=row["seq"],
                event_id=row["event_id"],
                type_=row["type"],
                data=row["body"].encode(),
                actor_id=row["actor_id"],
                recorded_at=row["recorded_at"],
            )
            assert row["prev_hash"] == prev
            assert row["hash"] == codec.chain_hash(prev, canonical)
            prev = row["hash"]
        head = await pool.fetchval("SELECT last_hash FROM streams WHERE stream_id = $1", room_id)
        assert head == prev


class TestImmutability:
    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE events SET type = 'x' WHERE stream_id = $1",
            "DELETE FROM events WHERE stream_id = $1",
        ],
    )
    async def test_events_cannot_be_changed_or_deleted(self, pool, store, statement):
        room_id = await _new_room(RoomService(store))
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await pool.execute(statement, room_id)
        assert (await _rows(pool, room_id))[0] == [1]

    async def test_events_cannot_be_truncated(self, pool):
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await pool.execute("TRUNCATE events CASCADE")


class TestIdempotency:
    async def test_a_retried_key_returns_the_first_result_and_appends_nothing(self, pool, store):
        service = RoomService(store)
        room_id = await _new_room(service)
        key = Idempotency(principal=alice.id, key=str(uuid.uuid4()), fingerprint=b"same")

        first = await service.execute(room_id, rename(alice, "once"), idempotency=key)
        again = await service.execute(room_id, rename(alice, "twice"), idempotency=key)

        assert not first.replayed
        assert again.replayed
        assert again.result == first.result
        assert await _rows(pool, room_id) == ([1, 2], [1, 2])

    async def test_concurrent_twins_append_once(self, own_database_url, pool):
        """Two nodes receive the same request at once: one appends, both answer the same."""
        pools = [await connect(own_database_url, max_size=2) for _ in range(2)]
        try:
            a, b = (RoomService(EventStore(p)) for p in pools)
            room_id = await _new_room(a)
            key = Idempotency(principal=alice.id, key=str(uuid.uuid4()), fingerprint=b"f")
            first, second = await asyncio.gather(
                a.execute(room_id, rename(alice, "x"), idempotency=key),
                b.execute(room_id, rename(alice, "x"), idempotency=key),
            )
        finally:
            for p in pools:
                await p.close()
        assert first.result == second.result
        assert sorted([first.replayed, second.replayed]) == [False, True]
        assert await _rows(pool, room_id) == ([1, 2], [1, 2])

    async def test_a_key_reused_for_another_request_is_refused(self, store):
        service = RoomService(store)
        room_id = await _new_room(service)
        key = str(uuid.uuid4())
        await service.execute(
            room_id,
            rename(alice, "a"),
            idempotency=Idempotency(principal=alice.id, key=key, fingerprint=b"one"),
        )
        with pytest.raises(IdempotencyKeyReused):
            await service.execute(
                room_id,
                rename(alice, "b"),
                idempotency=Idempotency(principal=alice.id, key=key, fingerprint=b"two"),
            )


class TestOptimisticConcurrency:
    async def test_a_stale_expected_version_is_a_conflict_with_the_current_version(self, store):
        service = RoomService(store)
        room_id = await _new_room(service)
        await service.execute(room_id, rename(alice, "v2"))
        with pytest.raises(VersionConflict) as refused:
            await service.execute(room_id, rename(alice, "v3"), expected_version=1)
        assert refused.value.code is ErrorCode.CONFLICT
        assert refused.value.details["currentVersion"] == 2

    async def test_a_conflict_from_another_node_is_reported_not_retried(self, own_database_url):
        """With If-Match the caller asked for that exact version: no silent retry."""
        pools = [await connect(own_database_url, max_size=2) for _ in range(2)]
        try:
            a, b = (RoomService(EventStore(p)) for p in pools)
            room_id = await _new_room(a)
            await a.current(room_id)
            await b.execute(room_id, rename(alice, "moved by b"))
            # a's cache still says version 1
            with pytest.raises(VersionConflict):
                await a.execute(room_id, rename(alice, "by a"), expected_version=1)
        finally:
            for p in pools:
                await p.close()


class TestBoundedLoad:
    async def test_loading_reads_a_snapshot_plus_a_bounded_tail(self, pool):
        store = EventStore(pool, snapshot_every=10)
        service = RoomService(store)
        room_id = await _new_room(service)
        for i in range(24):
            await service.execute(room_id, rename(alice, f"n{i}"))

        snapshot_version = await pool.fetchval(
            "SELECT version FROM snapshots WHERE stream_id = $1", room_id
        )
        row = await pool.fetchrow(_LOAD_TAIL, room_id)
        loaded = await store.load(room_id)
        replayed = room.fold(
            [
                codec.decode_event(r["data"])
                for r in await pool.fetch(
                    "SELECT data::text AS data FROM events WHERE stream_id = $1 ORDER BY seq",
                    room_id,
                )
            ]
        )
        assert snapshot_version == 20
        assert len(row["tail"]) == 5  # seq 21..25, not 25 events
        assert loaded.version == 25
        assert loaded.state == replayed


_LOAD_TAIL = """
SELECT ARRAY(SELECT seq FROM events e WHERE e.stream_id = s.stream_id
             AND e.seq > coalesce(sn.version, 0) ORDER BY seq) AS tail
FROM streams s LEFT JOIN snapshots sn USING (stream_id) WHERE s.stream_id = $1
"""
