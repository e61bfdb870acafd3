"""``LeanQueue`` behaves as ``asyncio.Queue`` (no maxsize) does, for what engine.io and
uvicorn use of it, and holds nothing while idle."""

from __future__ import annotations

import asyncio
import sys

import pytest

from roomcast.queues import LeanQueue


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


async def test_a_cancelled_get_takes_nothing_and_the_next_getter_is_woken():
    queue: LeanQueue[str] = LeanQueue()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs: `second` gets the item
    assert await second == "a"
    assert first.cancelled()
    assert queue.empty()


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
