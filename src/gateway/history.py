"""The latest events of each room, as this node delivered them: recent replays from memory.

Every room event a node delivers (published by its relay, or by another node's
through Redis) passes through ``delivery.RoomDelivery.deliver`` in seq order; ``record``
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

Memory is bounded three times: ``per_room`` events per room, ``total`` events
for the node, and ``total_bytes`` of payload for the node (events of 38 KB at
the event caps would be gigabytes); past either node-wide bound the room least
recently added to is forgotten first, and a room that alone is over
``total_bytes`` loses its oldest events.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from itertools import islice
from typing import Any

import msgspec

from roomcast.outbox.codec import Envelope

__all__ = ["RecentEvents"]


class _Window:
    __slots__ = ("bytes", "events", "first")

    def __init__(self, first: int) -> None:
        self.first = first
        """The seq of ``events[0]``."""
        self.events: deque[Envelope] = deque()
        self.bytes = 0

    def pop_oldest(self) -> int:
        """Forget the oldest event; its size in bytes."""
        size = _size(self.events.popleft())
        self.first += 1
        self.bytes -= size
        return size

    @property
    def next(self) -> int:
        return self.first + len(self.events)


def _size(envelope: Envelope) -> int:
    return len(envelope.payload) + len(envelope.event)


class RecentEvents:
    def __init__(self, *, per_room: int, total: int, total_bytes: int = 64 * 1024 * 1024) -> None:
        if per_room < 0 or total < 0 or total_bytes < 0:
            raise ValueError("per_room, total and total_bytes must be >= 0")
        self._per_room = per_room
        self._total = total
        self._total_bytes = total_bytes
        self._rooms: OrderedDict[str, _Window] = OrderedDict()
        self._count = 0
        self._bytes = 0

    @property
    def enabled(self) -> bool:
        return self._per_room > 0 and self._total > 0 and self._total_bytes > 0

    def __len__(self) -> int:
        """Events held, all rooms together."""
        return self._count

    @property
    def bytes(self) -> int:
        """Payload bytes held, all rooms together."""
        return self._bytes

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
                self._bytes -= window.bytes
            window = self._rooms[room] = _Window(seq)
        elif seq < window.next:
            return  # published again (a relay's retry): already held
        # Through Redis the payload arrives decoded: kept encoded, as replays send it.
        raw = data if isinstance(data, msgspec.Raw) else msgspec.Raw(msgspec.json.encode(data))
        envelope = Envelope(event=event, payload=raw)
        window.events.append(envelope)
        size = _size(envelope)
        window.bytes += size
        self._bytes += size
        self._rooms.move_to_end(room)
        self._count += 1
        if len(window.events) > self._per_room:
            self._bytes -= window.pop_oldest()
            self._count -= 1
        while self._count > self._total or self._bytes > self._total_bytes:
            if len(self._rooms) == 1:  # this room alone is over: its oldest go
                self._bytes -= window.pop_oldest()
                self._count -= 1
                if not window.events:
                    del self._rooms[room]
                continue
            _, oldest = self._rooms.popitem(last=False)
            self._count -= len(oldest.events)
            self._bytes -= oldest.bytes

    def forget(self, room: str) -> None:
        window = self._rooms.pop(room, None)
        if window is not None:
            self._count -= len(window.events)
            self._bytes -= window.bytes

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
