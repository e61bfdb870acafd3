"""``LeanQueue``: an unbounded FIFO with ``asyncio.Queue``'s interface and none of its idle weight.

Every socket holds two queues for its whole life (engine.io's output queue, and
uvicorn's queue of received WebSocket events), and nearly always both are
empty. An ``asyncio.Queue`` costs ≈3 KB even empty: three ``deque``s (items,
getters, putters) and an ``Event`` with a fourth. This one holds its items and
its waiting getters only while there are any (``__slots__``, ``None`` otherwise),
which is a measurable part of the memory per idle connection (bench P6,
bench/README.md).

The same semantics as ``asyncio.Queue`` with no ``maxsize`` (``put`` never
waits): FIFO, ``get`` waits for an item, a cancelled ``get`` takes nothing,
``get_nowait`` raises ``asyncio.QueueEmpty``, ``join`` waits until every item
put has been ``task_done``. ``put`` and ``get`` go through ``put_nowait`` and
``get_nowait``, so a subclass that overrides those two sees every item, as with
``asyncio.Queue`` (gateway/transport.py's ``OutboundQueue`` does).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["LeanQueue"]

T = TypeVar("T")


class LeanQueue(Generic[T]):
    __slots__ = ("_getters", "_items", "_joiners", "_unfinished")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
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

    async def get(self) -> T:
        while self._items is None:
            waiter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                self._forget(waiter)
                # Woken and cancelled at once: pass the wake-up on, as asyncio.Queue does.
                if not self.empty() and not waiter.cancelled():
                    self._wake_getter()
                raise
        return self.get_nowait()

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
        getters = self._getters
        while getters:
            waiter = getters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break
        if not getters:
            self._getters = None

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        if self._getters is not None:
            if waiter in self._getters:
                self._getters.remove(waiter)
            if not self._getters:
                self._getters = None
