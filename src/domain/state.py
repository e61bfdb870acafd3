"""A room's state: the entities seed 003 puts on the wire, folded from the room's events.

These Structs double as the wire objects (``participant``, ``prize``, ``winner``,
``room``) inside event payloads, so they encode camelCase.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

__all__ = [
    "ROOM_STATE_VERSION",
    "AppGrant",
    "Participant",
    "ParticipantRef",
    "Prize",
    "PrizeRef",
    "Question",
    "QuizAnswer",
    "Role",
    "Room",
    "RoomInfo",
    "RoomStatus",
    "UserRef",
    "Winner",
]


class RoomStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    CLOSED = "closed"


class Role(StrEnum):
    PARTICIPANT = "participant"
    MODERATOR = "moderator"


class _Wire(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base of the wire objects: immutable, camelCase on the wire."""


class UserRef(_Wire, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    name: str
    avatar: str | None = None


class Participant(_Wire, frozen=True, kw_only=True):
    id: str
    user_id: str
    role: Role
    user: UserRef
    joined_at: datetime


class ParticipantRef(_Wire, frozen=True, kw_only=True):
    """The participant as a winner payload shows it."""

    id: str
    user: UserRef


class Prize(_Wire, frozen=True, kw_only=True):
    id: str
    name: str
    description: str | None
    image_url: str | None
    quantity: int
    quantity_remaining: int
    created_at: datetime


class PrizeRef(_Wire, frozen=True, kw_only=True):
    """The prize as a winner payload shows it."""

    id: str
    name: str
    image_url: str | None


class Winner(_Wire, frozen=True, kw_only=True):
    id: str
    participant_id: str
    prize_id: str
    participant: ParticipantRef
    prize: PrizeRef
    created_at: datetime


class AppGrant(_Wire, frozen=True, kw_only=True):
    """An app acting in a room: who it is and what its token lets it do."""

    app_id: str
    permissions: tuple[str, ...] = ()


class QuizAnswer(_Wire, frozen=True, kw_only=True):
    """One participant's answer to one question, as judged when it was submitted."""

    participant_id: str
    user: UserRef
    correct: bool
    response_time: float
    """Seconds from the question's ``startTime`` to the server receiving the answer."""
    rank: int | None
    """1 for the first correct answer in the log, 2 for the next…; None if wrong."""


class Question(_Wire, frozen=True, kw_only=True):
    """A quiz question. The answer is not here: only ``sha256(salt || answer)``."""

    id: str
    number: int
    total: int | None
    text: str
    options: list[str]
    time_limit: float
    start_time: datetime
    answer_commitment: str
    closed: bool = False
    answers: dict[str, QuizAnswer] = msgspec.field(default_factory=dict)
    """user id → their answer: one answer per user, whatever participation they answer in."""
    correct_count: int = 0


class RoomInfo(_Wire, frozen=True, kw_only=True):
    """The room object of ``room:created`` / ``room:updated`` and the subscribe ack."""

    id: str
    name: str
    description: str | None
    status: RoomStatus
    settings: dict[str, Any]
    organizer_id: str
    created_at: datetime


ROOM_STATE_VERSION = 1
"""The version of ``Room`` as a snapshot holds it: bump it with any change to ``Room``
(or the Structs inside it) or to what ``room.evolve`` folds into it, and record the new
fingerprint in tests/unit/test_state_version.py."""


class Room(_Wire, frozen=True, kw_only=True):
    """Everything ``decide`` needs about one room; the snapshot the store caches.

    Only current members, undeleted prizes and unremoved winners are kept: the
    log holds the history, the state holds what the rules look at.
    """

    info: RoomInfo
    deleted: bool = False
    participants: dict[str, Participant] = msgspec.field(default_factory=dict)
    members: dict[str, str] = msgspec.field(default_factory=dict)
    """user id → participant id of the current participants: O(1) membership checks."""
    prizes: dict[str, Prize] = msgspec.field(default_factory=dict)
    winners: dict[str, Winner] = msgspec.field(default_factory=dict)
    draws: int = 0
    """How many draws this room has made; numbers each draw for verification."""
    seed_commitment: str | None = None
    """``sha256(seed)`` in hex, recorded when the room became active; draws need it."""
    questions: dict[str, Question] = msgspec.field(default_factory=dict)

    def member(self, user_id: str) -> Participant | None:
        """The user's current participation, if any."""
        participant_id = self.members.get(user_id)
        return None if participant_id is None else self.participants[participant_id]

    def can_read(self, user_id: str) -> bool:
        """Members and the organizer may read the room's log and subscribe to it."""
        return user_id == self.info.organizer_id or user_id in self.members

    def eligible(self) -> list[Participant]:
        """Who a draw may pick, sorted by participant id so every verifier sees one order.

        Current participants with the plain participant role who hold no current win.
        """
        holders = {w.participant.user.id for w in self.winners.values()}
        return sorted(
            (
                p
                for p in self.participants.values()
                if p.role is Role.PARTICIPANT and p.user_id not in holders
            ),
            key=lambda p: p.id,
        )
