"""Socket.IO connection state recovery, with the event log as its store.

socket.io-client (4.6+) keeps the last string argument of every event as its
*offset* once the server's CONNECT reply carried a ``pid``, and sends
``{pid, offset}`` with its auth when it reconnects; ``socket.recovered`` is
true when the reply carries the same ``pid``. Design and limits:
docs/decisions/0009-connection-state-recovery.md. In short:

* **Live offsets are positions in the relay's publication order**:
  ``"<batch>.<index>"``, the relay's batch number and the event's place in it
  (``outbox.relay.Outgoing.offset``). The relay records each batch it publishes
  (``relay_batches``, with its DELETE), every node delivers in that order, and
  a dropped transport loses only a suffix; so a client whose last offset is
  (k, i) has every event of its rooms published up to (k, i). With several
  relays (each publishing some rooms, docs/decisions/0022-relay-partitions.md)
  batches numbered before k can still be sent after it: those acknowledged
  after k was numbered count as after the offset too (``recovery_log``). One string,
  shared by every socket of a broadcast, says where a socket stands in all of
  its rooms.
* **Replayed events carry ``"<base>|<roomId>:<seq>"``**: the socket's live
  position when the replay began, and how far this room's replay got (the
  socket's other live events are held meanwhile, so the base stays true).
* **The session** (pid → user, rooms with the seq each subscription started
  from) is stored in PostgreSQL when a subscription starts or ends
  (``outbox.recovery_log``), not per packet.
"""

from __future__ import annotations

import secrets
from typing import NamedTuple

__all__ = [
    "Offset",
    "after_for",
    "live_offset",
    "new_pid",
    "parse_offset",
    "replay_offset",
]

_MAX_OFFSET = 200
"""Longer offsets are not ours (a room id is at most 64 characters)."""


class Offset(NamedTuple):
    """A client's last offset, parsed."""

    base: tuple[int, int] | None
    """(batch, index): every live event of the socket's rooms up to there arrived."""
    room: tuple[str, int] | None
    """(roomId, seq): that room's replay got this far (it overrides ``base`` for it)."""

    @property
    def base_text(self) -> str:
        return "" if self.base is None else live_offset(*self.base)


def new_pid() -> str:
    """A private session id: unguessable, it stands for the session's subscriptions."""
    return secrets.token_urlsafe(18)


def live_offset(batch: int, index: int) -> str:
    return f"{batch}.{index}"


def replay_offset(base: str, room_id: str, seq: int) -> str:
    return f"{base}|{room_id}:{seq}"


def _position(text: str) -> tuple[int, int] | None:
    batch, dot, index = text.partition(".")
    if not dot or not batch.isdigit() or not index.isdigit():
        return None
    return int(batch), int(index)


def parse_offset(value: object) -> Offset | None:
    """The offset a client sent back, or None when it is not one of ours."""
    if not isinstance(value, str) or not value or len(value) > _MAX_OFFSET:
        return None
    base_text, bar, rest = value.partition("|")
    base = _position(base_text) if base_text else None
    if base_text and base is None:
        return None
    if not bar:
        return None if base is None else Offset(base, None)
    room_id, colon, seq = rest.rpartition(":")
    if not colon or not room_id or not seq.isdigit():
        return None
    return Offset(base, (room_id, int(seq)))


def after_for(
    room_id: str,
    floor: int,
    offset: Offset | None,
    *,
    head: int,
    next_unsent: int | None,
    base_usable: bool,
) -> int:
    """The seq after which ``room_id`` must be replayed to a recovering socket.

    ``floor``: the seq the socket's subscription to the room started from (it
    has, or did not ask for, everything up to it). ``next_unsent``: the room's
    first event published after the offset's base, or still unpublished (None:
    none). A base too old to resolve (its batches expired) falls back to
    ``floor``: events may come twice, none is lost.
    """
    if offset is not None and offset.room is not None and offset.room[0] == room_id:
        after = max(floor, offset.room[1])
    elif offset is not None and offset.base is not None and base_usable:
        after = max(floor, head if next_unsent is None else next_unsent - 1)
    else:
        after = floor
    return min(after, head)
