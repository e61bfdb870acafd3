"""Socket.IO payloads the client sends, as Structs: decoding them is the validation."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from roomcast.domain.errors import InvalidPayload
from roomcast.domain.state import RoomInfo
from roomcast.service.quiz import Judged

__all__ = [
    "AnswerAck",
    "AnswerRequest",
    "MarkReadRequest",
    "NotificationReplayRequest",
    "PresenceAck",
    "ReplayCut",
    "ReplayRequest",
    "SubscribeAck",
    "SubscribeData",
    "SubscribeRequest",
    "UnsubscribeRequest",
    "parse",
    "presence_ack",
    "quiz_ack",
    "replay_cut",
]

T = TypeVar("T")

RoomId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[^:\x00-\x1f\x7f]+$")]
"""Room ids never contain ':'; other streams do (``user:{id}``, a user's notifications),
and a client must not join, leave or read those as rooms. No control characters
(PostgreSQL refuses a NUL in text: that was a 500)."""
Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Seq = Annotated[int, Meta(ge=0, le=2**63 - 1)]
"""A position in a log: a PostgreSQL ``bigint``."""


class _Request(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=False
):
    pass


class SubscribeRequest(_Request, frozen=True, kw_only=True):
    room_id: RoomId
    last_seq: Seq | None = None
    """Replay every event after this seq before live ones (omit: live only)."""
    batch: bool = False
    """Receive the room's events as ``room:events`` frames (arrays of payloads),
    the replay included, instead of one Socket.IO event per room event."""


class UnsubscribeRequest(_Request, frozen=True, kw_only=True):
    room_id: RoomId


class ReplayRequest(_Request, frozen=True, kw_only=True):
    room_id: RoomId
    after_seq: Seq
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class MarkReadRequest(_Request, frozen=True, kw_only=True):
    notification_id: Id


class NotificationReplayRequest(_Request, frozen=True, kw_only=True):
    after_seq: Seq = 0
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class AnswerRequest(_Request, frozen=True, kw_only=True):
    """``quiz:answer_submit``. A client ``timestamp`` may be sent (seed 003) and is
    ignored: response times are measured by the server."""

    question_id: Id
    answer: Annotated[str, Meta(min_length=1, max_length=1000, pattern=r"^[^\x00]*$")]
    room_id: RoomId | None = None
    """Optional: the question id alone finds its room."""


class AnswerData(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    question_id: str
    participant_id: str
    correct: bool
    response_time: float
    rank: int | None
    seq: int
    """The seq of this answer's ``quiz:answer_result`` in the room's log."""


class AnswerAck(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Seed 003 shows the quiz ack flat (``{success, correct, responseTime, rank}``),
    every other ack as ``{success, data}``: this one carries both."""

    success: bool
    correct: bool
    response_time: float
    rank: int | None
    data: AnswerData


def quiz_ack(judged: Judged) -> AnswerAck:
    result = judged.result
    return AnswerAck(
        success=True,
        correct=result.correct,
        response_time=result.response_time,
        rank=result.rank,
        data=AnswerData(
            question_id=result.question_id,
            participant_id=result.participant_id,
            correct=result.correct,
            response_time=result.response_time,
            rank=result.rank,
            seq=judged.seq,
        ),
    )


class ReplayCut(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Where a subscribe's inline replay ends: ``fromSeq < seq <= nextAfter``.

    ``truncated``: the cap (``ROOMCAST_SUBSCRIBE_REPLAY_MAX``) cut it short of
    ``headSeq``; the client pages ``nextAfter < seq <= headSeq`` with ``room:replay``.
    """

    truncated: bool
    next_after: int


def replay_cut(after: int, head: int, cap: int) -> ReplayCut:
    """The inline part of a replay of ``after < seq <= head``: at most ``cap`` seqs
    (0: no cap). Counted in seqs read, as ``room:replay``'s ``limit`` is, so the
    cut does not depend on what the caller may see."""
    if cap <= 0 or head - after <= cap:
        return ReplayCut(truncated=False, next_after=head)
    return ReplayCut(truncated=True, next_after=after + cap)


class SubscribeData(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    room_id: str
    room: RoomInfo
    head_seq: int
    """The room's head when the subscribe read it; live events follow it."""
    from_seq: int
    """The replay covers ``fromSeq < seq <= headSeq`` (``lastSeq``, or the head)."""
    replaying: int
    """How many events follow this ack as the replay (those the caller may see);
    ``room:subscribed`` comes after the last of them."""
    replay: ReplayCut
    """Where the inline replay ends; beyond it, up to ``headSeq``, the client pages."""


class SubscribeAck(msgspec.Struct, frozen=True, kw_only=True):
    """``room:subscribe``'s ack: seed 003 reads ``response.room``; ``data`` has it all.

    Sent before the replay, so handlers added in the ack callback see every event."""

    success: bool = True
    room: RoomInfo
    data: SubscribeData


class PresenceAck(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``presence:get_online``'s ack: seed 003's fields at the top level, and in ``data``."""

    success: bool
    room_id: str
    users: list[Any]
    count: int
    data: Any


def presence_ack(online: Any) -> PresenceAck:
    return PresenceAck(
        success=True, room_id=online.room_id, users=online.users, count=online.count, data=online
    )


def parse(kind: type[T], args: tuple[Any, ...]) -> T:
    """The one payload argument of an event, as ``kind``; INVALID_PAYLOAD otherwise."""
    if len(args) != 1:
        raise InvalidPayload(f"expected one payload object, got {len(args)} arguments")
    try:
        return msgspec.convert(args[0], kind)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(f"invalid payload: {exc}") from None
