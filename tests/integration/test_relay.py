"""The relay's guarantees against a real PostgreSQL, with a recording publisher."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest

from roomcast.domain import room
from roomcast.ids import uuid7
from roomcast.outbox.relay import PublishFailed, Relay
from roomcast.outbox.store import append_statement, prepare
from roomcast.service.rooms import RoomService

from ..helpers import create_room, rename, unique, user

alice = user("alice")


class Published:
    """What a relay published, per room, with a way to await a given seq."""

    def __init__(self) -> None:
        self.by_room: defaultdict[str, list[int]] = defaultdict(list)
        self._changed = asyncio.Condition()

    async def __call__(self, room_id: str, event: str, payload: msgspec.Raw) -> None:
        seq = msgspec.json.decode(payload)["seq"]
        async with self._changed:
            self.by_room[room_id].append(seq)
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
        relay_a = Relay(own_database_url, first, poll_interval=0.05)
        relay_b = Relay(own_database_url, second, poll_interval=0.05)
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

    async def __call__(self, room_id: str, event: str, payload: msgspec.Raw) -> None:
        async with self._changed:
            self.tried[room_id].append(msgspec.json.decode(payload)["seq"])
            self._changed.notify_all()
        if self.down:
            raise PublishFailed("redis down", retry_in=0.05)
        await super().__call__(room_id, event, payload)


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
