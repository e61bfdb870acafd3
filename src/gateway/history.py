"""The latest events of each room, as this node delivered them: recent replays from memory.

Every room event a node delivers (published by its relay, or by another node's
through Redis) passes through ``LocalDelivery.emit`` in seq order; ``record``
keeps the last ``per_room`` of each room. A subscribe whose ``lastSeq`` falls
inside that window is replayed from here instead of PostgreSQL: a reconnecting
client is usually a few events behind, and a reconnect storm asks for the same
events many times.

Only what is certain is served. A room's entries are contiguous in seq: a seq
below the next expected one is a duplicate (a relay publishing again after a
crash) and is ignored; a seq above it means this node missed a broadcast (a
cross-node copy Redis dropped), and the room's window starts again at it. The
window must reach the head the subscribe read from the database, else the
replay reads the database as before; events older than the window are read
from the database too (``replay.pages``). The bytes are the relay's, which are
the same as the store's read (``sql._WIRE_PAYLOAD``).

Memory is bounded twice: ``per_room`` events per room, ``total`` events for
the node; past ``total`` the room least recently added to is forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from itertools import islice
from typing import Any

import msgspec

from roomcast.outbox.codec import Envelope

__all__ = ["RecentEvents"]


class _Window:
    __slots__ = ("events", "first")

    def __init__(self, first: int) -> None:
        self.first = first
        """The seq of ``events[0]``."""
        self.events: deque[Envelope] = deque()

    @property
    def next(self) -> int:
        return self.first + len(self.events)


class RecentEvents:
    def __init__(self, *, per_room: int, total: int) -> None:
        if per_room < 0 or total < 0:
            raise ValueError("per_room and total must be >= 0")
        self._per_room = per_room
        self._total = total
        self._rooms: OrderedDict[str, _Window] = OrderedDict()
        self._count = 0

    @property
    def enabled(self) -> bool:
        return self._per_room > 0 and self._total > 0

    def __len__(self) -> int:
        """Events held, all rooms together."""
        return self._count

    def record(self, room: str, event: str, data: Any, seq: int) -> None:
        """``event`` with ``seq`` was delivered to ``room`` (a room's name, ``room:<id>``).

        A user's inbox (stream ``user:<id>``) is not kept: ``room:subscribe`` never
        replays one, so it would only push rooms out.
        """
        if not self.enabled or seq <= 0 or ":" in room.partition(":")[2]:
            return
        window = self._rooms.get(room)
        if window is None or seq > window.next:  # new here, or a broadcast this node missed
            if window is not None:
                self._count -= len(window.events)
            window = self._rooms[room] = _Window(seq)
        elif seq < window.next:
            return  # published again (a relay's retry): already held
        # Through Redis the payload arrives decoded: kept encoded, as replays send it.
        raw = data if isinstance(data, msgspec.Raw) else msgspec.Raw(msgspec.json.encode(data))
        window.events.append(Envelope(event=event, payload=raw))
        self._rooms.move_to_end(room)
        self._count += 1
        if len(window.events) > self._per_room:
            window.events.popleft()
            window.first += 1
            self._count -= 1
        while self._count > self._total:
            _, oldest = self._rooms.popitem(last=False)
            self._count -= len(oldest.events)

    def forget(self, room: str) -> None:
        window = self._rooms.pop(room, None)
        if window is not None:
            self._count -= len(window.events)

    def since(self, room: str, after: int, head: int) -> tuple[int, list[Envelope]] | None:
        """The held events with ``after < seq <= head``, as ``(seq of the first, events)``.

        None unless the window reaches ``head`` (what is newer than the window is
        not known here). The first seq may be above ``after + 1``: the events
        between are older than the window.
        """
        window = self._rooms.get(room)
        if window is None or window.next <= head or after >= head:
            return None
        start = max(after + 1, window.first)
        if start > head:
            return None
        return start, list(islice(window.events, start - window.first, head - window.first + 1))
