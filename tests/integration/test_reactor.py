"""Reactions in their own consumer: a reaction that always fails never holds up delivery,
and lands in the dead letters after its attempts, from where it is retried or dropped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest

from roomcast.outbox.reaction_queue import ReactionQueue
from roomcast.outbox.relay import Relay
from roomcast.service.reactions import Reactor
from roomcast.service.rooms import RoomService

from ..helpers import create_room, rename, unique, user
from .test_relay import Published

alice = user("alice")


class Reaction:
    """Fails for the rooms in ``failing``; records what it ran."""

    def __init__(self, *failing: str) -> None:
        self.failing = set(failing)
        self.ran: list[tuple[str, int]] = []
        self.tries = 0
        self._changed = asyncio.Condition()

    async def __call__(self, stream_id: str, event: str, payload: msgspec.Raw) -> None:
        async with self._changed:
            self.tries += 1
            self._changed.notify_all()
        if stream_id in self.failing:
            raise RuntimeError(f"reaction for {stream_id} always fails")
        async with self._changed:
            self.ran.append((stream_id, msgspec.json.decode(payload)["seq"]))
            self._changed.notify_all()

    async def wait(self, stream_id: str, seq: int) -> None:
        async with asyncio.timeout(30), self._changed:
            await self._changed.wait_for(lambda: (stream_id, seq) in self.ran)


@contextlib.asynccontextmanager
async def running(*coroutines) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def quiet(pool: asyncpg.Pool) -> None:
    await pool.execute("DELETE FROM outbox")
    await pool.execute("DELETE FROM reaction_queue")
    await pool.execute("DELETE FROM dead_letters")


@pytest.mark.usefixtures("quiet")
async def test_a_reaction_that_always_fails_is_dead_lettered_and_delivery_goes_on(
    own_database_url, pool, store
):
    service = RoomService(store)
    bad, good = unique("room"), unique("room")
    await service.execute(bad, create_room(bad, alice))
    await service.execute(good, create_room(good, alice))
    published = Published()
    reaction = Reaction(bad)
    queue = ReactionQueue(pool)
    reactor = Reactor(queue, reaction, attempts=3, poll_interval=0.05, first_delay=0.05)
    relay = Relay(
        own_database_url,
        published,
        poll_interval=0.05,
        react_to=frozenset({"room:updated"}),
        on_reacting=reactor.wake,
    )
    async with running(relay.run(), reactor.run()):
        await service.execute(bad, rename(alice, "bad 2"))
        for i in range(10):  # the other room keeps being delivered, and reacted to
            await service.execute(good, rename(alice, f"good {i}"))
        await published.wait(good, 11)
        await reaction.wait(good, 11)
        assert published.by_room[bad] == [1, 2]
        async with asyncio.timeout(30):
            while not (letters := await queue.dead_letters()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # a table: nothing to await
    [letter] = letters
    assert (letter.stream_id, letter.seq, letter.event) == (bad, 2, "room:updated")
    assert letter.attempts == 3
    assert "always fails" in (letter.last_error or "")
    assert reactor.stats.dead == 1
    assert await queue.backlog() == (0, 1)
    assert [r for r in reaction.ran if r[0] == good] == [(good, s) for s in range(2, 12)]

    # Retried once the cause is fixed: it runs and leaves the dead letters.
    reaction.failing.clear()
    assert await queue.retry([letter.global_id, 999_999_999]) == [letter.global_id]
    async with running(reactor.run()):
        await reaction.wait(bad, 2)
        async with asyncio.timeout(30):  # done is recorded just after the reaction returns
            while await queue.backlog() != (0, 0):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    assert reactor.stats.done >= 1


@pytest.mark.usefixtures("quiet")
async def test_a_dead_letter_can_be_dropped(own_database_url, pool, store):
    service = RoomService(store)
    room_id = unique("room")
    await service.execute(room_id, create_room(room_id, alice))
    queue = ReactionQueue(pool)
    reaction = Reaction(room_id)
    reactor = Reactor(queue, reaction, attempts=1, poll_interval=0.05)
    relay = Relay(own_database_url, Published(), poll_interval=0.05, react_to={"room:created"})
    async with running(relay.run(), reactor.run()):
        async with asyncio.timeout(30):
            while not (letters := await queue.dead_letters()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    assert [x.seq for x in letters] == [1]
    assert await queue.drop([letters[0].global_id]) == [letters[0].global_id]
    assert await queue.drop([letters[0].global_id]) == []
    assert await queue.backlog() == (0, 0)
