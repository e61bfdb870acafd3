"""Where this node stands in each room's log: the last seq it delivered, and what waits.

Every room event reaching this node's sockets (from its own relay, from another
node through Redis, or read back from the log) is let through here first, in
seq order and once:

* a seq at or below the room's position is a duplicate (a relay publishing
  again after a failure or a crash): dropped;
* the next seq is delivered, and the position moves;
* a seq above the next one means this node missed something (a copy Redis
  dropped): it is held, and the room is refilled from the log
  (``roomwatch.PositionWatch``), held events included, before anything newer
  goes out. So a removed participant's ``participant:left`` (and the eviction
  that follows it) always comes before the room's later events.

One delivery at a time per room: while one is running (it may await evictions)
or a refill reads the log, newer events are held, and the one who owns the room
delivers them when it is done. Rooms with no local socket are not ordered: their
events pass, and only move the position.

Pure bookkeeping: no I/O, no clock. Held events are bounded per room; past the
bound they are dropped, which is safe because a refill reads the log up to its
head anyway.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["RoomPositions", "Verdict"]


class Verdict(enum.Enum):
    DELIVER = "deliver"
    """The room's next event: deliver it now (the caller owns the room until ``release``)."""
    DROP = "drop"
    """Already delivered here."""
    HOLD = "hold"
    """Kept for later: the room is busy, or this event is past a hole."""


class RoomPositions:
    def __init__(self, *, max_held: int = 10_000) -> None:
        self.delivered: dict[str, int] = {}
        """Per room name, the last seq delivered to this node's sockets."""
        self._held: dict[str, dict[int, tuple[str, Any]]] = {}
        self._owned: set[str] = set()
        self._max_held = max_held
        self.lagging: dict[str, int] = {}
        """Per room, a head the position check saw above the position (PositionWatch)."""

    # ------------------------------------------------------------ live events

    def arrive(self, room: str, seq: int, event: str, data: Any, *, listened: bool) -> Verdict:
        """What to do with a room event; ``listened``: the room has a socket on this node."""
        position = self.delivered.get(room)
        if position is not None and seq <= position:
            return Verdict.DROP
        if not listened and room not in self._owned:
            self.delivered[room] = seq
            self._held.pop(room, None)
            return Verdict.DELIVER
        if room in self._owned or (position is not None and seq > position + 1):
            held = self._held.setdefault(room, {})
            if len(held) < self._max_held:
                held[seq] = (event, data)
            return Verdict.HOLD
        self.delivered[room] = seq
        self._owned.add(room)
        return Verdict.DELIVER

    def take_next(self, room: str) -> tuple[int, str, Any] | None:
        """The held event that comes next (moving the position), for the room's owner."""
        held = self._held.get(room)
        if not held:
            return None
        position = self.delivered.get(room, 0)
        for seq in [s for s in held if s <= position]:
            del held[seq]
        entry = held.pop(position + 1, None)
        if not held:
            del self._held[room]
        if entry is None:
            return None
        self.delivered[room] = position + 1
        return position + 1, entry[0], entry[1]

    def step(self, room: str, seq: int) -> bool:
        """A refill read ``seq`` from the log: whether it is the next one (position moved)."""
        position = self.delivered.get(room, 0)
        if seq != position + 1:
            return False
        self.delivered[room] = seq
        return True

    # ------------------------------------------------------------ ownership

    def claim(self, room: str) -> bool:
        """Take the room for a refill; False if someone is delivering it."""
        if room in self._owned:
            return False
        self._owned.add(room)
        return True

    def release(self, room: str) -> bool:
        """The owner is done. True if held events remain past a hole (refill needed)."""
        self._owned.discard(room)
        return bool(self._held.get(room))

    def owned(self, room: str) -> bool:
        return room in self._owned

    def gap(self, room: str) -> bool:
        """Whether events wait behind a hole."""
        return bool(self._held.get(room))

    # ------------------------------------------------------------ subscribes

    def subscribed(self, room: str, seq: int, *, alone: bool) -> None:
        """A local socket was brought to ``seq`` by its subscribe.

        Alone in the room, its position is the node's: nothing older is owed to
        anyone here. With others, the node's position stays; they may still be
        owed events up to ``seq`` (the refill sends them, the new socket's floor
        skips them).
        """
        position = self.delivered.get(room)
        if position is None or (alone and seq > position):
            self.delivered[room] = seq

    def forget(self, room: str) -> None:
        """No socket here listens to the room any more."""
        if room not in self._owned:
            self.delivered.pop(room, None)
            self._held.pop(room, None)
            self.lagging.pop(room, None)

    def holding(self) -> bool:
        """Whether any event waits here behind a hole (cheap: per broadcast)."""
        return any(self._held.values())

    def held_count(self) -> int:
        return sum(len(h) for h in self._held.values())
