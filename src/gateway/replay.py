"""Reading a room's log forward in pages, the next page read while this one is sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from roomcast.gateway.delivery import seq_of
from roomcast.outbox.codec import Envelope
from roomcast.outbox.store import EventStore

__all__ = ["pages"]


async def pages(
    store: EventStore, room_id: str, after: int, head: int, size: int
) -> AsyncGenerator[list[Envelope], None]:
    """The events ``after < seq <= head`` in pages of ``size``, in seq order.

    The read of page n+1 is in flight while the caller sends page n: the
    database works on the next rows while this process encodes and writes, so a
    long replay costs about max(read, send) per page instead of their sum.
    It holds at most two pool connections, and one for a replay of one page.
    """
    pending: asyncio.Future[list[Envelope]] | None = None
    try:
        if after < head:
            pending = asyncio.ensure_future(store.read(room_id, after, min(size, head - after)))
        while pending is not None:
            page = await pending
            pending = None
            if not page:
                return
            after = seq_of(page[-1].payload)
            if after < head:
                pending = asyncio.ensure_future(store.read(room_id, after, min(size, head - after)))
            yield page
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
