"""KeyedLock: one holder per key, keys independent, nothing kept once nobody holds or waits."""

from __future__ import annotations

import asyncio

import pytest

from roomcast.service.locks import KeyedLock


async def test_one_holder_per_key_in_arrival_order():
    locks, order = KeyedLock(), []
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with locks.hold("room_a"):
            order.append("first in")
            first_in.set()
            await release_first.wait()
            order.append("first out")

    async def second() -> None:
        async with locks.hold("room_a"):
            order.append("second in")

    one = asyncio.create_task(first())
    await first_in.wait()
    two = asyncio.create_task(second())
    await asyncio.sleep(0)  # let `second` queue on the lock
    assert order == ["first in"]
    release_first.set()
    await asyncio.gather(one, two)
    assert order == ["first in", "first out", "second in"]
    assert len(locks) == 0


async def test_other_keys_are_not_held_up():
    locks = KeyedLock()
    async with locks.hold("room_a"):
        await asyncio.wait_for(_enter_and_leave(locks, "room_b"), 1)
        assert len(locks) == 1
    assert len(locks) == 0


async def _enter_and_leave(locks: KeyedLock, key: str) -> None:
    async with locks.hold(key):
        pass


async def test_a_waiter_cancelled_leaves_nothing_behind():
    locks = KeyedLock()
    async with locks.hold("room_a"):
        waiter = asyncio.create_task(_enter_and_leave(locks, "room_a"))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert len(locks) == 0


async def test_an_error_inside_releases_the_key():
    locks = KeyedLock()
    with pytest.raises(RuntimeError):
        async with locks.hold("room_a"):
            raise RuntimeError("decide failed")
    assert len(locks) == 0
    await asyncio.wait_for(_enter_and_leave(locks, "room_a"), 1)
