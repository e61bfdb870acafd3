"""The position check: keeps this node's rooms at the log's head, whatever Redis did.

(Sockets leaving a room are reported by the manager adapters' ``leave_room``,
gateway/sockets.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from roomcast.gateway.delivery import RoomDelivery, seq_of, stream_of
from roomcast.outbox.store import EventStore

__all__ = ["PositionWatch"]

log = structlog.get_logger("roomcast.gateway")


class PositionWatch:
    """Keeps this node's rooms at the log's head, whatever reached it through Redis.

    Every ``interval`` seconds one statement reads the heads of all the rooms
    this node has sockets in (``EventStore.heads``). A room whose head, as seen
    at the previous check, is still above what this node delivered is refilled
    from the log (an event in flight through the relay is not a hole: it has
    one interval to arrive). A hole seen live (``RoomDelivery.on_hole``) is
    refilled at once. A refill reads pages after the room's position and
    delivers them through the same path as live events (gates, floors, frames,
    evictions), then what was held behind the hole.

    So a lost broadcast, the last event of a quiet room included, is repaired
    within two intervals and a read, even while Redis stays down.
    """

    def __init__(
        self,
        delivery: RoomDelivery,
        store: Callable[[], EventStore],
        *,
        interval: float = 0.5,
        page: int = 500,
    ) -> None:
        self._delivery = delivery
        self._store = store
        self.interval = interval
        self._page = page
        self._refills: dict[str, asyncio.Task[None]] = {}
        self._checked = asyncio.Event()
        self._kick = asyncio.Event()
        self.checks = 0
        self.refills = 0
        """Refills run (each may deliver several events)."""
        self.refilled = 0
        """Events delivered from the log by refills."""
        delivery.on_hole = self.refill_soon

    def check_now(self) -> None:
        """Check at once rather than at the next interval (e.g. Redis is back)."""
        self._kick.set()

    async def run(self) -> None:
        """Check every ``interval`` until cancelled; a failed check is logged and retried."""
        try:
            while True:
                try:
                    await self.check()
                except Exception as exc:  # the database is down: the next check retries
                    log.warning("position_check_failed", error=repr(exc))
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), self.interval)
        finally:
            tasks = list(self._refills.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def check(self) -> None:
        """One position check for every room with a socket on this node."""
        delivery = self._delivery
        positions = delivery.positions
        rooms = []
        for room in list(positions.delivered):
            if delivery.listened(room):
                rooms.append(room)
            else:
                positions.forget(room)
        self.checks += 1
        if not rooms:
            return
        heads = await self._store().heads([stream_of(r) for r in rooms])
        for room in rooms:
            head = heads.get(stream_of(room), 0)
            position = positions.delivered.get(room)
            if position is None or head <= position:
                positions.lagging.pop(room, None)
                continue
            seen = positions.lagging.get(room)
            if seen is not None and position < seen:
                self.refill_soon(room)  # not delivered within an interval: a hole
            positions.lagging[room] = head

    def refill_soon(self, room: str) -> None:
        """Refill ``room`` from the log in a task of its own (one per room at a time)."""
        if room in self._refills or self._delivery.positions.owned(room):
            return
        self._refills[room] = asyncio.get_running_loop().create_task(
            self._refill(room), name=f"refill {room}"
        )

    async def _refill(self, room: str) -> None:
        delivery = self._delivery
        positions = delivery.positions
        try:
            if not positions.claim(room):
                return  # someone delivers it now; they ask again if a hole is left
            again = False
            try:
                again = await self._read_to_head(room)
            except Exception as exc:  # the database: the next check tries again
                log.warning("room_refill_failed", room=room, error=repr(exc))
            finally:
                gap = positions.release(room)
            positions.lagging.pop(room, None)
            self.refills += 1
            if gap and again:
                self._refills.pop(room, None)
                self.refill_soon(room)
        finally:
            if self._refills.get(room) is asyncio.current_task():
                del self._refills[room]

    async def _read_to_head(self, room: str) -> bool:
        """Deliver the log after the room's position up to its head, then what was held.

        True when events are still held past a hole the log did not fill yet.
        """
        delivery = self._delivery
        positions = delivery.positions
        store = self._store()
        stream = stream_of(room)
        while True:
            after = positions.delivered.get(room, 0)
            page = await store.read(stream, after, self._page)
            for envelope in page:
                seq = seq_of(envelope.payload)
                if positions.step(room, seq):
                    self.refilled += 1
                    await delivery.deliver_logged(room, envelope.event, envelope.payload, seq)
            while (following := positions.take_next(room)) is not None:
                seq, event, data = following
                await delivery.deliver_logged(room, event, data, seq)
            if len(page) < self._page:
                return positions.gap(room) and bool(page)
