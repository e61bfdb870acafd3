"""Events: what happened to a room, immutable, named and shaped as seed 003's broadcasts.

Each Struct encodes to exactly the payload seed 003 documents for its event name
(camelCase), with the event name in ``type``. The store adds the envelope
(``eventId``, ``seq``); the payload itself already carries ``roomId`` and
``timestamp``. New fields get defaults; an incompatible change is a new event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from roomcast.domain.state import (
    Participant,
    Prize,
    Role,
    RoomInfo,
    RoomStatus,
    UserRef,
    Winner,
)

__all__ = [
    "EVENT_TYPES",
    "PLATFORM_NAMES",
    "AnswerResult",
    "AppEvent",
    "Event",
    "ParticipantChanges",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantUpdated",
    "PlatformEvent",
    "PrizeChanges",
    "PrizeCreated",
    "PrizeDeleted",
    "PrizeUpdated",
    "QuestionClosed",
    "QuestionPublished",
    "RankedAnswer",
    "RoomChanges",
    "RoomCreated",
    "RoomDeleted",
    "RoomStatusChanged",
    "RoomUpdated",
    "WinnerRemoved",
    "WinnerSelected",
    "decode_event",
    "event_name",
]


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", rename="camel"):
    room_id: str
    timestamp: datetime


class _Changes(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Only the fields that changed are present on the wire."""


class RoomChanges(_Changes, frozen=True, kw_only=True):
    name: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    settings: dict[str, Any] | UnsetType = UNSET


class ParticipantChanges(_Changes, frozen=True, kw_only=True):
    role: Role | UnsetType = UNSET


class PrizeChanges(_Changes, frozen=True, kw_only=True):
    name: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    image_url: str | UnsetType | None = UNSET
    quantity: int | UnsetType = UNSET


class RoomCreated(_Event, frozen=True, kw_only=True, tag="room:created"):
    room: RoomInfo


class RoomUpdated(_Event, frozen=True, kw_only=True, tag="room:updated"):
    changes: RoomChanges
    room: RoomInfo


class RoomStatusChanged(
    _Event, frozen=True, kw_only=True, tag="room:status_changed", omit_defaults=True
):
    old_status: RoomStatus
    new_status: RoomStatus
    seed_commitment: str | None = None
    """Our extension, on draft → active: ``sha256(seed)`` in hex (``draw.commitment``)."""
    seed_reveal: str | None = None
    """Our extension, on active → closed: the seed itself in hex, checkable against the
    commitment. Both are absent (not null) on the wire when unset."""


class RoomDeleted(_Event, frozen=True, kw_only=True, tag="room:deleted", omit_defaults=True):
    seed_reveal: str | None = None
    """Our extension, when an active room is deleted: its seed in hex, as on closing."""


class ParticipantJoined(_Event, frozen=True, kw_only=True, tag="participant:joined"):
    participant: Participant


class ParticipantLeft(_Event, frozen=True, kw_only=True, tag="participant:left"):
    participant_id: str
    user_id: str
    reason: Literal["left", "removed"] = "left"
    """Our extension: ``removed`` when an organizer or moderator took them out."""
    removed_by: str | None = None


class ParticipantUpdated(_Event, frozen=True, kw_only=True, tag="participant:updated"):
    participant_id: str
    changes: ParticipantChanges
    participant: Participant


class PrizeCreated(_Event, frozen=True, kw_only=True, tag="prize:created"):
    prize: Prize


class PrizeUpdated(_Event, frozen=True, kw_only=True, tag="prize:updated"):
    prize_id: str
    changes: PrizeChanges
    prize: Prize


class PrizeDeleted(_Event, frozen=True, kw_only=True, tag="prize:deleted"):
    prize_id: str


class WinnerSelected(_Event, frozen=True, kw_only=True, tag="winner:selected"):
    winner: Winner
    draw_number: int = 0
    """Our extension: the room's 1-based draw counter, an input of the pick."""
    eligible_count: int = 0
    """Our extension: how many participants the draw chose from."""


class WinnerRemoved(_Event, frozen=True, kw_only=True, tag="winner:removed"):
    winner_id: str
    participant_id: str
    prize_id: str


class QuestionPublished(_Event, frozen=True, kw_only=True, tag="quiz:question_published"):
    """Seed 003's payload, plus the commitment to the answer (revealed at closing)."""

    question_id: str
    question_number: int
    total_questions: int | None = None
    question: str
    options: list[str]
    time_limit: float
    """Seconds; answers received after ``startTime + timeLimit`` are refused."""
    start_time: datetime
    answer_commitment: str
    """``sha256(salt || normalized answer)`` in hex (``roomcast.domain.quiz``)."""


class AnswerResult(_Event, frozen=True, kw_only=True, tag="quiz:answer_result"):
    question_id: str
    participant_id: str
    user: UserRef
    correct: bool
    response_time: float
    """Seconds from ``startTime`` to the server receiving the answer (server clock)."""
    rank: int | None
    """Order of this correct answer in the log (1 = first); null when wrong."""
    answer_hash: str
    """``sha256(salt || normalized submitted answer)``: after the reveal anyone can
    check ``correct`` without the answer having been public before."""


class RankedAnswer(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    rank: int
    participant_id: str
    user: UserRef
    response_time: float


class QuestionClosed(_Event, frozen=True, kw_only=True, tag="quiz:question_closed"):
    question_id: str
    correct_answer: str
    answer_salt: str
    """Hex; with ``correctAnswer`` it opens ``answerCommitment`` (docs/audit.md)."""
    answers: int
    correct_count: int
    ranking: list[RankedAnswer]
    """The correct answers in rank order."""


class AppEvent(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An app's own event (seed 003 "Application Events"): ``type`` is its name,
    ``{appId}:{name}``, and ``data`` what the app sent, verbatim.

    Not part of the tagged union: the name is the app's, not ours. The store
    logs and relays it like any other event (seq, eventId, hash chain).
    """

    type: str
    room_id: str
    timestamp: datetime
    app_id: str
    data: dict[str, Any]


PlatformEvent = (
    RoomCreated
    | RoomUpdated
    | RoomStatusChanged
    | RoomDeleted
    | ParticipantJoined
    | ParticipantLeft
    | ParticipantUpdated
    | PrizeCreated
    | PrizeUpdated
    | PrizeDeleted
    | WinnerSelected
    | WinnerRemoved
    | QuestionPublished
    | AnswerResult
    | QuestionClosed
)

Event = PlatformEvent | AppEvent

EVENT_TYPES: tuple[type[_Event], ...] = (
    RoomCreated,
    RoomUpdated,
    RoomStatusChanged,
    RoomDeleted,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    PrizeCreated,
    PrizeUpdated,
    PrizeDeleted,
    WinnerSelected,
    WinnerRemoved,
    QuestionPublished,
    AnswerResult,
    QuestionClosed,
)

PLATFORM_NAMES: frozenset[str] = frozenset(str(t.__struct_config__.tag) for t in EVENT_TYPES)
"""The event names the platform owns; an app's names are ``{appId}:…`` outside them."""


def event_name(event: Event) -> str:
    """The Socket.IO event name, also stored as the row's ``type``."""
    if isinstance(event, AppEvent):
        return event.type
    tag = event.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


class _Named(msgspec.Struct):
    type: str


_name_decoder = msgspec.json.Decoder(_Named)
_platform_decoder = msgspec.json.Decoder(PlatformEvent)
_app_decoder = msgspec.json.Decoder(AppEvent)


def decode_event(data: str | bytes) -> Event:
    """An event from its stored JSON: ours by tag, anything else an app's."""
    if _name_decoder.decode(data).type in PLATFORM_NAMES:
        event: Event = _platform_decoder.decode(data)
        return event
    return _app_decoder.decode(data)
