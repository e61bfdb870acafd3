"""Group commit against a real PostgreSQL: several streams in one transaction, each with
its own compare-and-set, and the log's order unchanged (docs/guarantees.md)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from roomcast.domain import room
from roomcast.ids import uuid7
from roomcast.outbox import codec
from roomcast.outbox.errors import DuplicateIdempotencyKey, StaleVersion
from roomcast.outbox.store import EventStore, Loaded, PendingAppend, Remembered, prepare
from roomcast.service.rooms import RoomService

from ..helpers import create_room, rename, unique, user

alice = user("alice")


class CountingStore(EventStore):
    """The real store, noting how many appends each multi-stream statement carried."""

    def __init__(self, pool: asyncpg.Pool, **options: Any) -> None:
        super().__init__(pool, **options)
        self.batches: list[int] = []
        self.tried = asyncio.Event()
        """Set when a batch's statement has returned or failed."""

    async def _write_many(self, writes: list[Any]) -> set[str]:
        self.batches.append(len(writes))
        try:
            return await super()._write_many(writes)
        finally:
            self.tried.set()


async def _rooms(store: EventStore, count: int) -> list[Loaded[Any]]:
    service = RoomService(store)
    ids = [unique("room") for _ in range(count)]
    for room_id in ids:
        await service.execute(room_id, create_room(room_id, alice))
    return [await store.load(room_id) for room_id in ids]


def _renames(loaded: Loaded[Any], count: int) -> PendingAppend:
    """One append of ``count`` room:updated events (several events per command)."""
    state, events = loaded.state, []
    for i in range(count):
        decided = room.decide(rename(alice, f"{loaded.stream_id} #{i}"), state)
        events.extend(decided)
        state = room.evolve(state, decided[0])
    return prepare(loaded, events, actor_id=alice.id, new_event_id=uuid7)


async def _log(pool: asyncpg.Pool, room_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT seq, global_id, prev_hash, hash FROM events WHERE stream_id = $1 ORDER BY seq",
        room_id,
    )


async def test_commands_for_different_rooms_share_transactions_and_all_commit(pool):
    store = CountingStore(pool)
    service = RoomService(store)
    loaded = await _rooms(store, 24)

    async def renames(room_id: str) -> None:
        for i in range(5):
            await service.execute(room_id, rename(alice, f"name {i}"))

    await asyncio.gather(*(renames(r.stream_id) for r in loaded))

    assert max(store.batches) > 1, "concurrent commands never shared a transaction"
    for r in loaded:
        rows = await _log(pool, r.stream_id)
        assert [row["seq"] for row in rows] == [1, 2, 3, 4, 5, 6]
        outbox = await pool.fetch(
            "SELECT seq FROM outbox WHERE stream_id = $1 ORDER BY seq", r.stream_id
        )
        assert [o["seq"] for o in outbox] == [1, 2, 3, 4, 5, 6]
        assert await store.head(r.stream_id) == 6
        # The relay relies on this: within a room, global order is seq order.
        ids = [row["global_id"] for row in rows]
        assert ids == sorted(ids)
        # And the hash chain is unbroken across the batches.
        assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(rows))


async def test_several_events_per_append_keep_seq_order_in_the_global_order(pool):
    store = CountingStore(pool)
    loaded = await _rooms(store, 6)
    results = await asyncio.gather(*(store.append(_renames(r, 4)) for r in loaded))

    assert store.batches == [6]
    assert [r.version for r in results] == [5] * 6
    for r in loaded:
        ids = [row["global_id"] for row in await _log(pool, r.stream_id)]
        assert ids == sorted(ids)


async def test_a_stale_stream_in_a_batch_is_refused_alone_and_writes_nothing(pool):
    store = CountingStore(pool)
    first, stale, third = await _rooms(store, 3)
    await store.append(_renames(stale, 1))  # another writer moves it on: `stale` is behind
    results = await asyncio.gather(
        store.append(_renames(first, 1)),
        store.append(_renames(stale, 1)),
        store.append(_renames(third, 1)),
        return_exceptions=True,
    )

    assert store.batches == [1, 3]  # alone (a batch of one), then the three together
    assert isinstance(results[1], StaleVersion)
    assert [results[0].version, results[2].version] == [2, 2]  # type: ignore[union-attr]
    assert [row["seq"] for row in await _log(pool, stale.stream_id)] == [1, 2]
    assert await store.head(stale.stream_id) == 2


async def test_a_duplicate_key_in_a_batch_fails_only_its_own_append(pool):
    """The batch rolls back as a whole; written again one by one, the twin alone is refused."""
    store = CountingStore(pool)
    a, b, c = await _rooms(store, 3)
    key = unique("key")

    def remember(result: str) -> Remembered:
        return Remembered(principal=alice.id, key=key, fingerprint=b"f", result=result.encode())

    results = await asyncio.gather(
        store.append(_renames(a, 1), remember('{"version":2,"events":[]}')),
        store.append(_renames(b, 1), remember('{"version":2,"events":[]}')),
        store.append(_renames(c, 1)),
        return_exceptions=True,
    )

    assert store.batches == [3]
    assert isinstance(results[1], DuplicateIdempotencyKey)
    assert [results[0].version, results[2].version] == [2, 2]  # type: ignore[union-attr]
    assert await store.head(b.stream_id) == 1
    assert [row["seq"] for row in await _log(pool, b.stream_id)] == [1]
    assert await store.find_remembered(alice.id, key) is not None


@contextlib.asynccontextmanager
async def head_held(pool: asyncpg.Pool, room_id: str) -> AsyncIterator[None]:
    """Another session holds the room's head row (an open transaction) until the block ends."""
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM streams WHERE stream_id = $1 FOR UPDATE", room_id)
        yield


async def test_a_room_locked_by_another_transaction_holds_up_only_itself(pool):
    """A batch does not wait for a head row lock: the other rooms commit while it is held,
    and the locked room's append waits on its own, then commits."""
    store = CountingStore(pool)
    locked, *others = await _rooms(store, 4)
    async with head_held(pool, locked.stream_id):
        waiting = asyncio.ensure_future(store.append(_renames(locked, 1)))
        done = await asyncio.wait_for(
            asyncio.gather(*(store.append(_renames(r, 1)) for r in others)), timeout=5
        )
        assert [d.version for d in done] == [2, 2, 2]
        assert not waiting.done()
        assert await store.head(locked.stream_id) == 1
    assert (await asyncio.wait_for(waiting, timeout=5)).version == 2
    assert store.batches[0] == 4  # all four tried together first
    assert [row["seq"] for row in await _log(pool, locked.stream_id)] == [1, 2]


async def test_a_lone_append_to_a_locked_room_does_not_hold_up_the_next_batch(pool):
    store = CountingStore(pool)
    locked, other = await _rooms(store, 2)
    async with head_held(pool, locked.stream_id):
        waiting = asyncio.ensure_future(store.append(_renames(locked, 1)))
        # Its batch of one found the lock and was handed off (a batch that waited
        # for the lock would never return while it is held).
        await asyncio.wait_for(store.tried.wait(), timeout=5)
        done = await asyncio.wait_for(store.append(_renames(other, 1)), timeout=5)
        assert done.version == 2
        assert not waiting.done()
    assert (await asyncio.wait_for(waiting, timeout=5)).version == 2
    assert store.batches == [1, 1]


async def test_snapshots_are_written_for_every_stream_of_a_batch_that_crosses_one(pool):
    store = CountingStore(pool, snapshot_every=2)
    loaded = await _rooms(store, 4)  # each at version 1
    await asyncio.gather(*(store.append(_renames(r, 1)) for r in loaded))

    assert store.batches == [4]
    for r in loaded:
        version = await pool.fetchval(
            "SELECT version FROM snapshots WHERE stream_id = $1", r.stream_id
        )
        assert version == 2
        assert (await store.load(r.stream_id)).state == (await _folded(pool, r.stream_id))


async def _folded(pool: asyncpg.Pool, room_id: str) -> Any:
    rows = await pool.fetch(
        "SELECT data::text AS data FROM events WHERE stream_id = $1 ORDER BY seq", room_id
    )
    return room.fold([codec.decode_event(r["data"]) for r in rows])


@pytest.mark.parametrize("batch", [1, 64])
async def test_grouping_can_be_switched_off(pool, batch):
    store = CountingStore(pool, append_batch=batch)
    loaded = await _rooms(store, 4)
    await asyncio.gather(*(store.append(_renames(r, 1)) for r in loaded))
    assert store.batches == ([] if batch == 1 else [4])
