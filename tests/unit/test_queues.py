"""``LeanQueue`` and ``LeanEvent`` behave as ``asyncio.Queue`` (no maxsize) and
``asyncio.Event`` do, for what engine.io and uvicorn use of them, and hold nothing
while idle."""

from __future__ import annotations

import asyncio
import sys

import pytest

from roomcast.queues import LeanEvent, LeanQueue


async def test_items_come_out_in_order_and_get_waits_for_the_next():
    queue: LeanQueue[int] = LeanQueue()
    for i in range(3):
        await queue.put(i)
    assert (queue.qsize(), queue.empty()) == (3, False)
    assert [await queue.get() for _ in range(3)] == [0, 1, 2]
    assert queue.empty()

    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    queue.put_nowait(7)
    assert await waiting == 7


async def test_an_empty_get_nowait_raises_QueueEmpty():
    with pytest.raises(asyncio.QueueEmpty):
        LeanQueue().get_nowait()


async def test_a_get_cancelled_before_an_item_arrives_takes_nothing():
    queue: LeanQueue[str] = LeanQueue()
    first = queue.get()
    second = queue.get()
    first.cancel()
    queue.put_nowait("a")
    assert await second == "a"
    assert queue.empty()


async def test_wait_for_on_get_times_out_and_the_item_waits_for_the_next_get():
    """engine.io's writer: ``wait_for(queue.get(), timeout)``, then ``get`` again."""
    queue: LeanQueue[str] = LeanQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    queue.put_nowait("b")
    assert await asyncio.wait_for(queue.get(), 1) == "b"


async def test_get_is_a_future_so_wait_for_makes_no_task():
    assert isinstance(LeanQueue().get(), asyncio.Future)


async def test_join_waits_until_every_item_is_done():
    queue: LeanQueue[int] = LeanQueue()
    await queue.join()  # nothing put: returns at once
    queue.put_nowait(1)
    queue.put_nowait(2)
    joined = asyncio.ensure_future(queue.join())
    queue.get_nowait()
    queue.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError, match="too many times"):
        queue.task_done()


def test_an_idle_queue_is_a_fraction_of_an_asyncio_queue():
    lean: LeanQueue[int] = LeanQueue()
    lean.put_nowait(1)
    lean.get_nowait()  # its deque goes once it is empty again
    assert lean.empty()
    assert sys.getsizeof(lean) < 100
    assert not hasattr(lean, "__dict__")


async def test_LeanEvent_wakes_every_waiter_and_stays_set_until_cleared():
    event = LeanEvent()
    assert not event.is_set()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    event.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await event.wait() is True
    event.clear()
    cancelled = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert event._waiters == []
