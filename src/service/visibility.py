"""The one read policy: which events of a room's log a user may see.

Every read path applies it: the REST log (``GET /api/rooms/{roomId}/events``),
the socket's ``room:subscribe`` replay and live hand-over and ``room:replay``,
and the SSE stream. docs/guarantees.md states the rule.

A user who may read the room now (its organizer or a current participant)
sees its log, except what happened between their leaving (or removal) and
their next joining: they get the ``participant:left`` that ended their
membership, then nothing until their ``participant:joined``. History before
their first join is the room's record and stays visible. The starting point
comes from the log (``EventStore.member_after``), so the same events are
hidden whatever seq a read starts from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from roomcast.outbox.codec import Envelope
from roomcast.outbox.store import EventStore

__all__ = [
    "Visibility",
    "joined_user",
    "left_user",
    "member_at_end",
    "seq_of",
    "visible",
    "visible_count",
]


class _Seq(msgspec.Struct):
    seq: int = 0


class _Left(msgspec.Struct, rename="camel"):
    user_id: str = ""


class _Joined(msgspec.Struct):
    participant: _Left = msgspec.field(default_factory=_Left)


_seq_decoder = msgspec.json.Decoder(_Seq)
_left_decoder = msgspec.json.Decoder(_Left)
_joined_decoder = msgspec.json.Decoder(_Joined)


def seq_of(data: Any) -> int:
    """A room event payload's seq (``msgspec.Raw`` or, from Redis, a dict; a relayed
    ``(payload, offset)`` pair is read through); 0 if none."""
    if isinstance(data, tuple):
        data = data[0]
    if isinstance(data, msgspec.Raw):
        return _seq_decoder.decode(data).seq
    if isinstance(data, dict):
        return int(data.get("seq", 0))
    return 0


def left_user(data: Any) -> str | None:
    """The user a ``participant:left`` payload names."""
    if isinstance(data, msgspec.Raw):
        return _left_decoder.decode(data).user_id or None
    if isinstance(data, dict):
        user = data.get("userId")
        return user if isinstance(user, str) else None
    return None


def joined_user(data: Any) -> str | None:
    """The user a ``participant:joined`` payload names."""
    if isinstance(data, msgspec.Raw):
        return _joined_decoder.decode(data).participant.user_id or None
    if isinstance(data, dict):
        participant = data.get("participant")
        user = participant.get("userId") if isinstance(participant, dict) else None
        return user if isinstance(user, str) else None
    return None


class Visibility:
    """The policy applied to one user's read of one room, event by event, in seq order."""

    __slots__ = ("member", "user_id")

    def __init__(self, user_id: str, *, member: bool) -> None:
        self.user_id = user_id
        self.member = member
        """Whether the user was a member at the point the read starts from."""

    @classmethod
    async def starting(
        cls, store: EventStore, room_id: str, user_id: str, after: int
    ) -> Visibility:
        """The policy for a read of ``room_id`` that starts after seq ``after``."""
        return cls(user_id, member=await store.member_after(room_id, user_id, after))

    def admit(self, event: str, data: Any) -> bool:
        if (event == "participant:joined" and joined_user(data) == self.user_id) or (
            event == "participant:left" and left_user(data) == self.user_id
        ):
            shown, self.member = _own(self.member, event)
            return shown
        return self.member


def _own(member: bool, event: str) -> tuple[bool, bool]:
    """The rule for one of the user's own ``participant:joined``/``left`` events:
    whether it is shown, and whether they are a member after it. Any other event is
    shown exactly while they are a member."""
    if event == "participant:joined":
        return True, True
    if event == "participant:left" and member:
        return True, False
    return member, member


def visible(policy: Visibility, events: Iterable[Envelope]) -> list[Envelope]:
    """The events of a page (in seq order) that ``policy`` admits."""
    return [e for e in events if policy.admit(e.event, e.payload)]


def visible_count(member: bool, after: int, head: int, changes: list[tuple[int, str]]) -> int:
    """How many of ``after < seq <= head`` a read shows, without reading the events:
    counted from the user's own joined/left events in that range (``changes``, as
    ``(seq, event)`` in seq order) and whether they were a member at ``after``."""
    count, prev = 0, after
    for seq, event in changes:
        if member:
            count += seq - prev - 1  # the events in between, someone else's
        shown, member = _own(member, event)
        count += shown
        prev = seq
    if member:
        count += head - prev
    return count


def member_at_end(member: bool, changes: list[tuple[int, str]]) -> bool:
    """Whether the user is a member after ``changes`` (their own joined/left events in
    seq order), having been one (``member``) before them."""
    for _, event in changes:
        _, member = _own(member, event)
    return member
