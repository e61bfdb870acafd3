"""Group commit's batching, with writers in memory (the SQL is tested against PostgreSQL in
tests/integration/test_group_commit.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from roomcast.domain.errors import ServiceUnavailable
from roomcast.outbox.errors import InDoubt
from roomcast.outbox.group_commit import GroupCommit


@dataclass(frozen=True)
class Item:
    stream: str
    name: str


@dataclass
class Database:
    """Records every transaction; ``gate`` holds the first one open until set."""

    stale: set[str] = field(default_factory=set)
    """Streams whose compare-and-set fails."""
    batches: list[list[str]] = field(default_factory=list)
    """Every multi-stream transaction (a batch), by item name."""
    alone: list[str] = field(default_factory=list)
    """Every append written on its own (after its batch rolled back)."""
    fail_many: BaseException | None = None
    fail_one: dict[str, BaseException] = field(default_factory=dict)
    gate: asyncio.Event | None = None
    _gated: bool = False
    began: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the first transaction starts."""

    async def _held(self) -> None:
        self.began.set()
        if self.gate is not None and not self._gated:
            self._gated = True
            await self.gate.wait()

    async def one(self, item: Item) -> bool:
        self.alone.append(item.name)
        await self._held()
        if item.stream in self.fail_one:
            raise self.fail_one[item.stream]
        return item.stream not in self.stale

    async def many(self, items: list[Item]) -> set[str]:
        self.batches.append([i.name for i in items])
        await self._held()
        if self.fail_many is not None:
            raise self.fail_many
        return {i.stream for i in items} - self.stale


def group(db: Database, max_batch: int = 64) -> GroupCommit[Item]:
    return GroupCommit(db.one, db.many, lambda i: i.stream, max_batch=max_batch)


async def _started(db: Database) -> None:
    """Until the first transaction has begun (a write is a few loop turns away)."""
    await asyncio.wait_for(db.began.wait(), timeout=5)


async def test_a_lone_append_is_written_at_once_as_a_batch_of_one():
    db = Database()
    assert await group(db).write(Item("r1", "a")) is True
    assert db.batches == [["a"]]
    assert db.alone == []


async def test_appends_waiting_together_share_one_transaction():
    db = Database()
    results = await asyncio.gather(*_writes(group(db), 5))
    assert results == [True] * 5
    assert db.batches == [["w0", "w1", "w2", "w3", "w4"]]


async def _first_held() -> tuple[asyncio.Event, Database, GroupCommit[Item], asyncio.Future[bool]]:
    """A group whose first transaction (one append, "first") is held open until ``gate`` is set."""
    gate = asyncio.Event()
    db = Database(gate=gate)
    g = group(db)
    first = asyncio.ensure_future(g.write(Item("r0", "first")))
    await _started(db)
    return gate, db, g, first


def _writes(g: GroupCommit[Item], count: int) -> list[asyncio.Future[bool]]:
    return [asyncio.ensure_future(g.write(Item(f"r{i}", f"w{i}"))) for i in range(count)]


async def test_appends_arriving_during_a_transaction_form_the_next_batch():
    gate, db, g, first = await _first_held()
    later = _writes(g, 3)
    await asyncio.sleep(0)
    assert db.batches == [["first"]]  # one transaction at a time
    gate.set()
    assert await first is True
    assert await asyncio.gather(*later) == [True, True, True]
    assert db.batches == [["first"], ["w0", "w1", "w2"]]


async def test_a_batch_holds_one_append_per_stream_in_arrival_order():
    db = Database()
    g = group(db)
    items = [Item("r1", "a"), Item("r1", "b"), Item("r2", "c"), Item("r1", "d")]
    results = await asyncio.gather(*(g.write(i) for i in items))
    assert results == [True] * 4
    assert db.batches == [["a", "c"], ["b"], ["d"]]


async def test_max_batch_bounds_a_transaction():
    db = Database()
    g = group(db, max_batch=2)
    assert await asyncio.gather(*_writes(g, 5)) == [True] * 5
    assert db.batches == [["w0", "w1"], ["w2", "w3"], ["w4"]]


async def test_a_stale_stream_is_refused_alone():
    db = Database(stale={"r1"})
    assert await asyncio.gather(*_writes(group(db), 3)) == [True, False, True]
    assert len(db.batches) == 1


async def test_when_the_batch_fails_each_append_is_written_alone_and_gets_its_own_answer():
    duplicate = RuntimeError("duplicate key in r1")
    db = Database(fail_many=RuntimeError("the batch rolled back"), fail_one={"r1": duplicate})
    results = await asyncio.gather(*_writes(group(db), 3), return_exceptions=True)
    assert results == [True, duplicate, True]
    assert db.batches == [["w0", "w1", "w2"]]
    assert db.alone == ["w0", "w1", "w2"]


async def test_an_unavailable_database_fails_every_append_of_the_batch_without_retrying():
    down = ServiceUnavailable("the database is unavailable; retry shortly", {})
    db = Database(fail_many=down)
    results = await asyncio.gather(*_writes(group(db), 3), return_exceptions=True)
    assert results == [down, down, down]
    assert db.batches == [["w0", "w1", "w2"]]
    assert db.alone == []


async def test_a_caller_that_leaves_cannot_cut_the_batch_carrying_the_others():
    gate = asyncio.Event()
    db = Database(gate=gate)
    g = group(db)
    writes = _writes(g, 3)
    await _started(db)
    writes[0].cancel()  # the request that started the batch goes away
    gate.set()
    assert await asyncio.gather(*writes[1:]) == [True, True]
    assert db.batches == [["w0", "w1", "w2"]]
    assert writes[0].cancelled()


async def test_an_append_whose_caller_left_before_its_batch_is_not_written():
    gate, db, g, first = await _first_held()
    gone, kept = _writes(g, 2)
    await asyncio.sleep(0)
    gone.cancel()
    gate.set()
    assert await first is True
    assert await kept is True
    assert db.batches == [["first"], ["w1"]]


def test_a_group_needs_room_for_two():
    db = Database()
    with pytest.raises(ValueError, match="max_batch"):
        group(db, max_batch=1)


async def test_an_in_doubt_batch_is_never_rewritten_each_caller_settles_its_own():
    doubt = InDoubt(ServiceUnavailable("connection lost", {}), server_pid=1234)
    db = Database(fail_many=doubt)
    results = await asyncio.gather(*_writes(group(db), 3), return_exceptions=True)
    assert results == [doubt, doubt, doubt]
    assert db.alone == []  # written again blind, a committed batch would be applied twice


async def test_a_stray_cancelled_error_from_the_driver_cancels_no_caller():
    db = Database(fail_many=asyncio.CancelledError())
    g = group(db)
    results = await asyncio.gather(*_writes(g, 2), return_exceptions=True)
    assert [type(r) for r in results] == [InDoubt, InDoubt]
    db.fail_many = None
    assert await g.write(Item("later", "next")) is True


async def test_a_batch_writer_cancelled_at_shutdown_leaves_its_callers_in_doubt_not_cancelled():
    gate = asyncio.Event()
    db = Database(gate=gate)
    g = group(db)
    writes = _writes(g, 2)
    await _started(db)
    for task in list(g._tasks):  # the batch's own task: what a shutdown cancels
        task.cancel()
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert [type(r) for r in results] == [InDoubt, InDoubt]
