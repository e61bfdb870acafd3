"""``LeanQueue`` and ``LeanEvent``: asyncio's ``Queue`` and ``Event`` without their idle weight.

Every socket holds two queues for its whole life (engine.io's output queue, and
uvicorn's queue of received WebSocket events), and nearly always both are
empty. An ``asyncio.Queue`` costs ≈3 KB even empty: three ``deque``s (items,
getters, putters) and an ``Event`` with a fourth. This one holds its items and
its waiting getters only while there are any (``__slots__``, ``None`` otherwise),
which is a measurable part of the memory per idle connection (bench P6,
bench/README.md).

The semantics of ``asyncio.Queue`` with no ``maxsize`` (``put`` never waits):
FIFO, ``get`` waits for an item, ``get_nowait`` raises ``asyncio.QueueEmpty``,
``join`` waits until every item put has been ``task_done``; ``get`` returns a
Future rather than a coroutine (see there). Items go in through ``put_nowait``
and out through ``get_nowait``, so a subclass that overrides those two sees
every item, as with ``asyncio.Queue`` (gateway/transport.py's ``OutboundQueue``
does).

``LeanEvent`` is ``asyncio.Event`` (``set``, ``clear``, ``is_set``, ``wait``)
without the ``deque`` it keeps for waiters nobody is: uvicorn's WebSocket
protocol holds one per connection for its write flow control.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["LeanEvent", "LeanQueue"]

T = TypeVar("T")


class LeanQueue(Generic[T]):
    __slots__ = ("_getters", "_items", "_joiners", "_unfinished")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._getters: list[asyncio.Future[T]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        self._unfinished = 0

    def qsize(self) -> int:
        return 0 if self._items is None else len(self._items)

    def empty(self) -> bool:
        return self._items is None

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        self._unfinished += 1
        self._wake_getter()

    async def put(self, item: T) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> T:
        items = self._items
        if items is None:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None  # an idle queue holds no deque
        return item

    def get(self) -> asyncio.Future[T]:
        """The next item, as a Future to await (a coroutine in ``asyncio.Queue``).

        A Future, so that ``asyncio.wait_for`` waits on it without a Task of its
        own: engine.io's writer waits so on every socket, idle or not. An item is
        handed to a waiting getter when it is put; a getter cancelled before that
        takes nothing, but one whose own task is cancelled after that loses it
        (engine.io's writer and uvicorn's receive are cancelled only when their
        connection is over).
        """
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._items is not None:
            # Items wait only when no live getter does: put_nowait hands them over.
            waiter.set_result(self.get_nowait())
            return waiter
        if self._getters is None:
            self._getters = []
        self._getters.append(waiter)
        return waiter

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners is not None:
            joiners, self._joiners = self._joiners, None
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished:
            joiner = asyncio.get_running_loop().create_future()
            if self._joiners is None:
                self._joiners = []
            self._joiners.append(joiner)
            await joiner

    def _wake_getter(self) -> None:
        """Hand waiting items to waiting getters, first come first served."""
        getters = self._getters
        while getters and self._items is not None:
            waiter = getters.pop(0)
            if not waiter.done():  # a cancelled getter takes nothing
                waiter.set_result(self.get_nowait())
        if not getters:
            self._getters = None


class LeanEvent:
    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True
