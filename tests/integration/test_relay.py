"""The relay's guarantees against a real PostgreSQL, with a recording publisher."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import asyncpg
import msgspec
import pytest

from roomcast.domain import room
from roomcast.ids import uuid7
from roomcast.outbox import sql
from roomcast.outbox.partitions import PARTITION_OF
from roomcast.outbox.recovery_log import RecoveryLog
from roomcast.outbox.relay import QUEUE_PLAN_SETTINGS, Outgoing, PublishFailed, Relay
from roomcast.outbox.store import append_statement, prepare
from roomcast.service.rooms import RoomService

from ..helpers import create_room, rename, unique, user

alice = user("alice")


class Published:
    """What a relay published, per room, with a way to await a given seq
    (an ``outbox.relay.Publisher``); ``calls`` counts the relay's publish calls."""

    def __init__(self) -> None:
        self.by_room: defaultdict[str, list[int]] = defaultdict(list)
        self.calls = 0
        self._changed = asyncio.Condition()

    async def publish(self, events: Sequence[Outgoing]) -> None:
        self.calls += 1
        async with self._changed:
            for outgoing in events:
                self.by_room[outgoing.room_id].append(msgspec.json.decode(outgoing.payload)["seq"])
            self._changed.notify_all()

    async def wait(self, room_id: str, seq: int, within: float = 30) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: seq in self.by_room[room_id])


@contextlib.asynccontextmanager
async def relaying(dsn: str, published: Published) -> AsyncIterator[Relay]:
    relay = Relay(dsn, published, poll_interval=0.05)
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(30):
            await relay.became_active.wait()
        yield relay
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def running(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def new_room(service: RoomService) -> str:
    room_id = unique("room")
    await service.execute(room_id, create_room(room_id, alice))
    return room_id


@pytest.fixture
async def quiet_outbox(pool: asyncpg.Pool) -> None:
    """Earlier tests leave rows nobody relayed; they would only slow these tests down."""
    await pool.execute("DELETE FROM outbox")


@pytest.mark.usefixtures("quiet_outbox")
class TestNoSkips:
    async def test_a_transaction_that_commits_last_is_still_published(
        self, own_database_url, pool, store
    ):
        """Room A's append takes its ids first and commits last; room B commits in between.
        A cursor on ids would have moved past A's row: the relay still publishes it."""
        service = RoomService(store)
        room_a, room_b = await new_room(service), await new_room(service)
        published = Published()
        async with relaying(own_database_url, published):
            await published.wait(room_a, 1)
            await published.wait(room_b, 1)
            held = await asyncpg.connect(own_database_url)
            try:
                loaded = await store.load(room_a)
                pending = prepare(
                    loaded,
                    room.decide(rename(alice, "late"), loaded.state),
                    actor_id=alice.id,
                    new_event_id=uuid7,
                )
                tx = held.transaction()
                await tx.start()
                await held.fetchval(*append_statement(pending))
                early_id = await held.fetchval(
                    "SELECT max(global_id) FROM events WHERE stream_id = $1", room_a
                )
                await service.execute(room_b, rename(alice, "committed first"))
                await published.wait(room_b, 2)
                later_id = await pool.fetchval(
                    "SELECT max(global_id) FROM events WHERE stream_id = $1", room_b
                )
                assert early_id < later_id
                assert published.by_room[room_a] == [1]
                await tx.commit()
            finally:
                await held.close()
            await published.wait(room_a, 2)
        assert published.by_room[room_a] == [1, 2]

    async def test_a_rolled_back_append_leaves_no_hole_in_what_is_published(
        self, own_database_url, store
    ):
        service = RoomService(store)
        room_id = await new_room(service)
        published = Published()
        async with relaying(own_database_url, published):
            held = await asyncpg.connect(own_database_url)
            try:
                loaded = await store.load(room_id)
                pending = prepare(
                    loaded,
                    room.decide(rename(alice, "never"), loaded.state),
                    actor_id=alice.id,
                    new_event_id=uuid7,
                )
                tx = held.transaction()
                await tx.start()
                await held.fetchval(*append_statement(pending))
                await tx.rollback()
            finally:
                await held.close()
            await service.execute(room_id, rename(alice, "real"))
            await published.wait(room_id, 2)
        assert published.by_room[room_id] == [1, 2]

    async def test_an_idle_transaction_does_not_stall_the_relay_and_is_ended(
        self, own_database_url, pool, store
    ):
        """A session appends to room A, then idles inside its transaction. Room B's events
        still flow; the idle session is ended by its timeout and A's seq stays dense."""
        service = RoomService(store)
        room_a, room_b = await new_room(service), await new_room(service)
        published = Published()
        async with relaying(own_database_url, published):
            idle = await asyncpg.connect(
                own_database_url, server_settings={"idle_in_transaction_session_timeout": "500"}
            )
            loaded = await store.load(room_a)
            pending = prepare(
                loaded,
                room.decide(rename(alice, "idle"), loaded.state),
                actor_id=alice.id,
                new_event_id=uuid7,
            )
            await idle.execute("BEGIN")
            await idle.fetchval(*append_statement(pending))
            for i in range(5):
                await service.execute(room_b, rename(alice, f"b{i}"))
            await published.wait(room_b, 6)
            # The idle session holds room A's head row; our append waits for the
            # server to end that session, then goes through with seq 2.
            await service.execute(room_a, rename(alice, "after the timeout"))
            await published.wait(room_a, 2)
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await idle.execute("COMMIT")
            await idle.close()
        assert published.by_room[room_a] == [1, 2]
        assert published.by_room[room_b] == [1, 2, 3, 4, 5, 6]


@pytest.mark.usefixtures("quiet_outbox")
class TestSinglePublisher:
    async def test_only_one_relay_publishes_and_a_standby_takes_over(self, own_database_url, store):
        service = RoomService(store)
        room_id = await new_room(service)
        first, second = Published(), Published()
        # One partition: the single publisher of ADR 0004, the other stands by.
        relay_a = Relay(own_database_url, first, poll_interval=0.05, partitions=1)
        relay_b = Relay(own_database_url, second, poll_interval=0.05, partitions=1)
        task_a = asyncio.create_task(relay_a.run())
        async with asyncio.timeout(30):
            await relay_a.became_active.wait()
        task_b = asyncio.create_task(relay_b.run())
        try:
            await first.wait(room_id, 1)
            for i in range(5):
                await service.execute(room_id, rename(alice, f"n{i}"))
            await first.wait(room_id, 6)
            assert not relay_b.stats.active
            assert second.by_room[room_id] == []

            task_a.cancel()  # the active relay goes away: its session, and lock, end
            await asyncio.gather(task_a, return_exceptions=True)
            async with asyncio.timeout(30):
                await relay_b.became_active.wait()
            await service.execute(room_id, rename(alice, "after takeover"))
            await second.wait(room_id, 7)
        finally:
            task_b.cancel()
            await asyncio.gather(task_b, return_exceptions=True)
        assert first.by_room[room_id] == [1, 2, 3, 4, 5, 6]
        assert second.by_room[room_id] == [7]


async def rooms_per_partition(service: RoomService, pool: asyncpg.Pool, count: int) -> list[str]:
    """One new room in each of ``count`` partitions (room ``k`` hashes to partition ``k``)."""
    found: dict[int, str] = {}
    while len(found) < count:
        room_id = unique("room")
        found.setdefault(await pool.fetchval(PARTITION_OF, room_id, count), room_id)
    rooms = [found[k] for k in range(count)]
    for room_id in rooms:
        await service.execute(room_id, create_room(room_id, alice))
    return rooms


async def until(condition, within: float = 30) -> None:
    """Until ``condition()`` holds: a relay's holdings change between its batches, and
    it offers nothing to await for that but its stats."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@pytest.mark.usefixtures("quiet_outbox")
class TestPartitions:
    P = 4

    def relay(self, dsn: str, published: Published, partitions: int = P) -> Relay:
        return Relay(
            dsn, published, poll_interval=0.05, partitions=partitions, rebalance_interval=0.1
        )

    async def test_two_relays_split_the_partitions_and_each_publishes_only_its_rooms(
        self, own_database_url, pool, store
    ):
        service = RoomService(store)
        rooms = await rooms_per_partition(service, pool, self.P)
        first, second = Published(), Published()
        relay_a, relay_b = self.relay(own_database_url, first), self.relay(own_database_url, second)
        async with running(relay_a.run()):
            await until(lambda: len(relay_a.stats.partitions) == self.P)  # alone: all of them
            async with running(relay_b.run()):
                await until(
                    lambda: len(relay_a.stats.partitions) == len(relay_b.stats.partitions) == 2
                )
                a, b = set(relay_a.stats.partitions), set(relay_b.stats.partitions)
                assert a | b == set(range(self.P))
                assert not a & b
                assert relay_a.stats.live_relays == relay_b.stats.live_relays == 2
                # One reactor at a time: beside the holder of partition 0.
                assert relay_a.runs_reactions() != relay_b.runs_reactions()
                assert relay_a.runs_reactions() == (0 in a)
                assert not relay_a.holds_all()
                assert not relay_b.holds_all()
                for i in range(3):
                    for room_id in rooms:
                        await service.execute(room_id, rename(alice, f"n{i}"))
                for k, room_id in enumerate(rooms):
                    owner = first if k in a else second
                    await owner.wait(room_id, 4)
        for k, room_id in enumerate(rooms):
            mine, other = (first, second) if k in a else (second, first)
            assert mine.by_room[room_id][-3:] == [2, 3, 4]
            assert 2 not in other.by_room[room_id]  # never published by both

    async def test_a_relay_that_goes_away_leaves_its_partitions_to_the_other_in_order(
        self, own_database_url, pool, store
    ):
        service = RoomService(store)
        first, second = Published(), Published()
        relay_a, relay_b = self.relay(own_database_url, first), self.relay(own_database_url, second)
        task_a = asyncio.create_task(relay_a.run())
        try:
            async with running(relay_b.run()):
                await until(
                    lambda: len(relay_a.stats.partitions) == len(relay_b.stats.partitions) == 2
                )
                rooms = await rooms_per_partition(service, pool, self.P)
                gone = set(relay_a.stats.partitions)
                writing = asyncio.create_task(self.rename_all(service, rooms, 20))
                await first.wait(rooms[min(gone)], 3)  # A is publishing its rooms
                task_a.cancel()  # its session, and its locks, end
                await asyncio.gather(task_a, return_exceptions=True)
                await until(lambda: len(relay_b.stats.partitions) == self.P)
                await writing
                for room_id in rooms:
                    await second.wait(room_id, 21)
        finally:
            task_a.cancel()
            await asyncio.gather(task_a, return_exceptions=True)
        for k, room_id in enumerate(rooms):
            if k not in gone:
                assert second.by_room[room_id] == list(range(1, 22))
                continue
            # A published a head of the room, B the rest: together every seq, in order
            # (B may repeat what A published but had not yet deleted).
            head, tail = first.by_room[room_id], second.by_room[room_id]
            assert head == list(range(1, len(head) + 1))
            assert tail == list(range(tail[0], 22))
            assert tail[0] <= len(head) + 1

    async def rename_all(self, service: RoomService, rooms: list[str], times: int) -> None:
        for i in range(times):
            for room_id in rooms:
                await service.execute(room_id, rename(alice, f"n{i}"))

    async def test_relays_with_different_partition_counts_never_share_a_room(
        self, own_database_url, pool, store
    ):
        """A relay started with another P takes nothing while the first lives (a room
        would hash to two partitions); it takes over once the first has gone."""
        service = RoomService(store)
        [room_id] = await rooms_per_partition(service, pool, 1)
        first, second = Published(), Published()
        relay_a = self.relay(own_database_url, first)
        relay_b = self.relay(own_database_url, second, partitions=2 * self.P)
        task_a = asyncio.create_task(relay_a.run())
        try:
            await until(lambda: len(relay_a.stats.partitions) == self.P)
            async with running(relay_b.run()):
                await until(lambda: relay_b.stats.mismatched_relays == 1)
                await until(lambda: relay_a.stats.mismatched_relays == 1)
                await service.execute(room_id, rename(alice, "while both live"))
                await first.wait(room_id, 2)
                assert relay_b.stats.partitions == ()
                assert len(relay_a.stats.partitions) == self.P  # it keeps what it held
                task_a.cancel()
                await asyncio.gather(task_a, return_exceptions=True)
                await until(lambda: len(relay_b.stats.partitions) == 2 * self.P)
                await service.execute(room_id, rename(alice, "after"))
                await second.wait(room_id, 3)
        finally:
            task_a.cancel()
            await asyncio.gather(task_a, return_exceptions=True)
        assert first.by_room[room_id] == [1, 2]
        assert second.by_room[room_id][-1] == 3
        assert 1 not in second.by_room[room_id]


async def test_the_relays_session_reads_a_batch_in_key_order_without_sorting_the_backlog(
    own_database_url,
):
    """The relay's planner settings (relay.QUEUE_PLAN_SETTINGS): a partitioned batch walks
    the outbox's primary key and looks each event up, whatever the planner estimates."""
    conn = await asyncpg.connect(own_database_url, server_settings=QUEUE_PLAN_SETTINGS)
    try:
        plans = [
            await conn.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *args)
            for statement, args in (
                (sql.RELAY_BATCH_PARTITIONS, (500, [], [0, 2], 4)),
                (sql.RELAY_BATCH, (500,)),
            )
        ]
    finally:
        await conn.close()
    for plan in plans:
        nodes = json.dumps(json.loads(plan))
        assert '"Index Name": "outbox_pkey"' in nodes
        assert '"Node Type": "Sort"' not in nodes
        assert '"Node Type": "Merge Join"' not in nodes
        assert '"Node Type": "Seq Scan"' not in nodes


class TestRecoveryAcrossRelays:
    async def test_a_batch_numbered_before_the_offset_but_acknowledged_after_it_counts_as_missed(
        self, pool
    ):
        """Relay A numbers its batch (room X), relay B numbers a later one (room Y) and
        acknowledges it; a client gets Y's event, with B's offset, and goes away; then A
        sends and acknowledges X's. Recovery from B's offset must replay X's event; a
        batch acknowledged before B's was numbered was sent before it, and is not."""
        x, y, z = unique("room"), unique("room"), unique("room")

        async def number() -> int:
            return int(await pool.fetchval(sql.NEXT_BATCH))

        async def record(batch: int, room: str, seq: int) -> None:
            await pool.execute(
                "INSERT INTO relay_batches (batch, stream_ids, seqs, acked)"
                " VALUES ($1, ARRAY[$2], ARRAY[$3::bigint], nextval('relay_batch_seq'))",
                batch, room, seq,
            )  # fmt: skip

        earlier = await number()
        await record(earlier, z, 4)  # acknowledged before B's batch is numbered
        a_batch = await number()
        b_batch = await number()
        await record(b_batch, y, 3)
        await record(a_batch, x, 7)  # A's, acknowledged last
        positions = await RecoveryLog(pool).resolve((b_batch, 1), [x, y, z])
        assert positions[x].next_unsent == 7
        assert positions[y].next_unsent is None  # the client has B's only event
        assert positions[z].next_unsent is None


@pytest.mark.usefixtures("quiet_outbox")
class TestOutboxVacuum:
    async def test_the_publishing_relay_vacuums_the_outbox_and_keeps_publishing(
        self, own_database_url, store
    ):
        """Every ``vacuum_every`` deleted rows the relay vacuums the queue table itself."""
        service = RoomService(store)
        room_id = await new_room(service)
        published = Published()
        relay = Relay(own_database_url, published, poll_interval=0.05, vacuum_every=5)
        task = asyncio.create_task(relay.run())
        try:
            for i in range(10):
                await service.execute(room_id, rename(alice, f"n{i}"))
            await published.wait(room_id, 11)
            # The vacuum follows the batch that crossed the threshold, before the
            # next batch: once seq 12 is out, it has run.
            await service.execute(room_id, rename(alice, "after"))
            await published.wait(room_id, 12)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert relay.stats.vacuums >= 1
        assert published.by_room[room_id] == list(range(1, 13))


class FlakyRedis(Published):
    """A publisher whose every publish fails (``PublishFailed``) while ``down`` is set;
    ``tried`` records every try, delivered or not (what this node's sockets got)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.tried: defaultdict[str, list[int]] = defaultdict(list)

    async def publish(self, events: Sequence[Outgoing]) -> None:
        async with self._changed:
            for outgoing in events:
                seq = msgspec.json.decode(outgoing.payload)["seq"]
                self.tried[outgoing.room_id].append(seq)
            self._changed.notify_all()
        if self.down:
            raise PublishFailed("redis down", retry_in=0.05)
        await super().publish(events)


@pytest.mark.usefixtures("quiet_outbox")
async def test_a_publish_that_failed_keeps_its_rows_and_is_published_again_in_order(
    own_database_url, pool, store
):
    service = RoomService(store)
    room_id = await new_room(service)
    flaky = FlakyRedis()
    async with relaying(own_database_url, flaky) as relay:
        for i in range(5):
            await service.execute(room_id, rename(alice, f"n{i}"))
        # Every row was tried (newer ones too: this node's sockets are not held up) ...
        async with asyncio.timeout(30), flaky._changed:
            await flaky._changed.wait_for(
                lambda: sorted(set(flaky.tried[room_id])) == [1, 2, 3, 4, 5, 6]
            )
        # ... and none was acknowledged: all still in the outbox.
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE stream_id = $1", room_id) == 6
        assert relay.stats.unacked == 6
        assert relay.stats.publish_failures >= 6
        assert flaky.by_room[room_id] == []
        flaky.down = False
        await flaky.wait(room_id, 6)
        # Kept rows are published (and deleted) before new ones are read: once 7 is
        # out, 1..6 are gone from the outbox.
        await service.execute(room_id, rename(alice, "after"))
        await flaky.wait(room_id, 7)
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM outbox o JOIN events e USING (global_id)"
                " WHERE o.stream_id = $1 AND e.seq <= 6",
                room_id,
            )
            == 0
        )
    assert flaky.by_room[room_id] == [1, 2, 3, 4, 5, 6, 7]
    assert relay.stats.unacked == 0
