"""Reading a room's log forward in pages, the next pages read while this one is sent.

``pages`` yields each page as envelopes (checked event by event: a socket that
takes one message per event, or a user whose membership changes in the range);
``frames`` yields each page as a ready ``room:events`` array body, for a batch
subscriber who may see every event of the range (docs/decisions/0025).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial
from typing import NamedTuple, TypeVar

from roomcast.gateway.delivery import room_name
from roomcast.gateway.history import RecentEvents
from roomcast.metrics import REPLAYED_EVENTS
from roomcast.outbox.codec import Envelope
from roomcast.outbox.store import EventStore

__all__ = ["Frame", "frames", "pages"]

AHEAD = 2
"""Page reads in flight at once: each on its own pool connection."""

_REPLAYED_HEAD = b'{"replayed":true,'
"""What ``outlet.mark_replayed`` writes in front of a replayed payload's members."""

_NEXT_REPLAYED = b"," + _REPLAYED_HEAD

P = TypeVar("P")


class Frame(NamedTuple):
    """A page of replayed events as one ``room:events`` frame's array body."""

    events: int
    """How many events it holds."""
    last_seq: int
    body: str
    """``[payload,…]``: each payload with ``"replayed":true`` first, in seq order."""


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
    held, read_up_to = _split(recent, room_id, after, head)
    if after < read_up_to:
        read = _ahead(partial(store.read, room_id), after, read_up_to, size, _page_empty)
        async with contextlib.aclosing(read):
            async for page in read:
                REPLAYED_EVENTS.labels("database").inc(len(page))
                yield page
    if held is not None:
        events = held[1]
        for start in range(0, len(events), size):
            page = events[start : start + size]
            REPLAYED_EVENTS.labels("memory").inc(len(page))
            yield page


async def frames(
    store: EventStore,
    room_id: str,
    after: int,
    head: int,
    size: int,
    recent: RecentEvents | None = None,
) -> AsyncGenerator[Frame, None]:
    """The events ``after < seq <= head`` as frames of up to ``size``, in seq order:
    the same pages as ``pages``, each already joined (``EventStore.read_frame``
    splices it in the database; memory's are joined here, without decoding).

    Only for a reader who sees every event of the range: nothing is filtered.
    """
    held, read_up_to = _split(recent, room_id, after, head)
    if after < read_up_to:
        read = partial(_frame_from_store, store, room_id)
        got = _ahead(read, after, read_up_to, size, _frame_empty)
        async with contextlib.aclosing(got):
            async for frame in got:
                REPLAYED_EVENTS.labels("database").inc(frame.events)
                yield frame
    if held is not None:
        first, events = held
        for start in range(0, len(events), size):
            page = events[start : start + size]
            REPLAYED_EVENTS.labels("memory").inc(len(page))
            # A payload is `{…}`: its members after the `{` follow the replayed head.
            body = _NEXT_REPLAYED.join([memoryview(e.payload)[1:] for e in page])
            last = first + start + len(page) - 1
            yield Frame(len(page), last, (b"[%s%s]" % (_REPLAYED_HEAD, body)).decode())


def _split(
    recent: RecentEvents | None, room_id: str, after: int, head: int
) -> tuple[tuple[int, list[Envelope]] | None, int]:
    """What memory holds of ``after < seq <= head`` (or None), and the seq up to which
    the rest, older, is read from the database."""
    held = None if recent is None else recent.since(room_name(room_id), after, head)
    return held, head if held is None else held[0] - 1


async def _frame_from_store(store: EventStore, room_id: str, after: int, limit: int) -> Frame:
    return Frame(*await store.read_frame(room_id, after, limit))


def _frame_empty(frame: Frame) -> bool:
    return frame.events == 0


def _page_empty(page: list[Envelope]) -> bool:
    return not page


async def _ahead(
    read: Callable[[int, int], Awaitable[P]],
    after: int,
    head: int,
    size: int,
    empty: Callable[[P], bool],
) -> AsyncGenerator[P, None]:
    """Pages from the database (``read(after, limit)``). A room's seqs are dense,
    so page n covers ``after + n*size < seq <= after + (n+1)*size`` and can be
    asked for before page n-1 has arrived: up to ``AHEAD`` reads are in flight
    while the caller sends the page before them. The database works on the next
    rows (on its own cores) while this process encodes and writes, so a long
    replay costs about max(read, send) per page instead of their sum. It holds
    at most ``AHEAD`` pool connections, and one for a replay of one page.
    """
    pending: deque[asyncio.Future[P]] = deque()
    start = after

    def ask() -> None:
        nonlocal start
        pending.append(asyncio.ensure_future(read(start, min(size, head - start))))
        start += size

    try:
        while start < head and len(pending) < AHEAD:
            ask()
        while pending:
            page = await pending.popleft()
            if empty(page):
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
