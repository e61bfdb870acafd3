"""Reading a room's log forward in pages, the next pages read while this one is sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator

from roomcast.gateway.delivery import room_name
from roomcast.gateway.history import RecentEvents
from roomcast.metrics import REPLAYED_EVENTS
from roomcast.outbox.codec import Envelope
from roomcast.outbox.store import EventStore

__all__ = ["pages"]

AHEAD = 2
"""Page reads in flight at once: each on its own pool connection."""


async def pages(
    store: EventStore,
    room_id: str,
    after: int,
    head: int,
    size: int,
    recent: RecentEvents | None = None,
) -> AsyncGenerator[list[Envelope], None]:
    """The events ``after < seq <= head`` in pages of ``size``, in seq order.

    What ``recent`` holds of them (this node's latest events of the room, up to
    ``head``) comes from memory; the rest, older, from the database.
    """
    held = None if recent is None else recent.since(room_name(room_id), after, head)
    read_up_to = head if held is None else held[0] - 1
    if after < read_up_to:
        async with contextlib.aclosing(_read(store, room_id, after, read_up_to, size)) as read:
            async for page in read:
                REPLAYED_EVENTS.labels("database").inc(len(page))
                yield page
    if held is not None:
        events = held[1]
        for start in range(0, len(events), size):
            page = events[start : start + size]
            REPLAYED_EVENTS.labels("memory").inc(len(page))
            yield page


async def _read(
    store: EventStore, room_id: str, after: int, head: int, size: int
) -> AsyncGenerator[list[Envelope], None]:
    """Pages from the database. A room's seqs are dense, so page n covers ``after +
    n*size < seq <= after + (n+1)*size`` and can be asked for before page n-1 has
    arrived: up to ``AHEAD`` reads are in flight while the caller sends the page
    before them. The database works on the next rows (on its own cores) while
    this process encodes and writes, so a long replay costs about max(read, send)
    per page instead of their sum. It holds at most ``AHEAD`` pool connections,
    and one for a replay of one page.
    """
    pending: deque[asyncio.Future[list[Envelope]]] = deque()
    start = after

    def ask() -> None:
        nonlocal start
        pending.append(asyncio.ensure_future(store.read(room_id, start, min(size, head - start))))
        start += size

    try:
        while start < head and len(pending) < AHEAD:
            ask()
        while pending:
            page = await pending.popleft()
            if not page:
                return
            if start < head:
                ask()
            yield page
    finally:
        for future in pending:
            future.cancel()
        for future in pending:
            with contextlib.suppress(BaseException):
                await future
