"""Commands: what a caller asks of a room. Imperative names; all inputs injected.

Every command carries who asks (``actor``) and when (``at``, from the caller's
clock), and any id or secret its events will need (a room's draw seed comes
from the server's secret store), so ``decide`` stays pure.
Partial updates use ``msgspec.UNSET`` for "leave as it is".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from roomcast.domain.state import AppGrant, Role, RoomStatus, UserRef

__all__ = [
    "ChangeParticipantRole",
    "ChangeRoomStatus",
    "CloseQuestion",
    "Command",
    "CreatePrize",
    "CreateRoom",
    "DeletePrize",
    "DeleteRoom",
    "DrawWinner",
    "JoinRoom",
    "LeaveRoom",
    "PublishAppEvent",
    "PublishQuestion",
    "RemoveParticipant",
    "RemoveWinner",
    "SubmitAnswer",
    "UpdatePrize",
    "UpdateRoom",
]


class _Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="command"):
    actor: UserRef
    at: datetime


class CreateRoom(_Command, frozen=True, kw_only=True, tag="create_room"):
    room_id: str
    name: str
    description: str | None = None
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


class UpdateRoom(_Command, frozen=True, kw_only=True, tag="update_room"):
    name: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    settings: dict[str, Any] | UnsetType = UNSET


class ChangeRoomStatus(_Command, frozen=True, kw_only=True, tag="change_room_status"):
    status: RoomStatus
    seed: bytes | None = None
    """The room's secret draw seed (``draw.SEED_BYTES`` long): activating commits to it,
    closing an active room reveals it. Unused for draft → closed."""


class DeleteRoom(_Command, frozen=True, kw_only=True, tag="delete_room"):
    seed: bytes | None = None
    """The room's secret draw seed: deleting an active room reveals it, as closing does."""


class JoinRoom(_Command, frozen=True, kw_only=True, tag="join_room"):
    participant_id: str
    """The id the new participation gets (a rejoin is a new participation)."""


class LeaveRoom(_Command, frozen=True, kw_only=True, tag="leave_room"):
    pass


class RemoveParticipant(_Command, frozen=True, kw_only=True, tag="remove_participant"):
    participant_id: str


class ChangeParticipantRole(_Command, frozen=True, kw_only=True, tag="change_participant_role"):
    participant_id: str
    role: Role


class CreatePrize(_Command, frozen=True, kw_only=True, tag="create_prize"):
    prize_id: str
    name: str
    quantity: int = 1
    description: str | None = None
    image_url: str | None = None


class UpdatePrize(_Command, frozen=True, kw_only=True, tag="update_prize"):
    prize_id: str
    name: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    image_url: str | UnsetType | None = UNSET
    quantity: int | UnsetType = UNSET


class DeletePrize(_Command, frozen=True, kw_only=True, tag="delete_prize"):
    prize_id: str


class DrawWinner(_Command, frozen=True, kw_only=True, tag="draw_winner"):
    prize_id: str
    winner_id: str
    seed: bytes | None = None
    """The room's secret seed; it must match the room's commitment. The draw picks
    ``eligible[draw.entropy(seed, draw_number) % len(eligible)]`` (see ``draw``)."""


class RemoveWinner(_Command, frozen=True, kw_only=True, tag="remove_winner"):
    winner_id: str


class PublishAppEvent(_Command, frozen=True, kw_only=True, tag="publish_app_event"):
    """An app's own event; ``actor`` is the app (``app:{appId}``), ``app`` its grant."""

    app: AppGrant
    name: str
    data: dict[str, Any]


class PublishQuestion(_Command, frozen=True, kw_only=True, tag="publish_question"):
    """Ask a quiz question. ``answer`` and ``salt`` stay on the server: the event
    carries only ``sha256(salt || answer)`` until the question closes."""

    question_id: str
    question: str
    options: list[str]
    time_limit: float
    answer: str
    salt: bytes
    total_questions: int | None = None
    app: AppGrant | None = None


class SubmitAnswer(_Command, frozen=True, kw_only=True, tag="submit_answer"):
    """A participant's answer; ``at`` is when the server received it. The server
    brings the question's secret (``correct_answer``, ``salt``) from its store."""

    question_id: str
    answer: str
    correct_answer: str
    salt: bytes


class CloseQuestion(_Command, frozen=True, kw_only=True, tag="close_question"):
    question_id: str
    correct_answer: str
    salt: bytes
    app: AppGrant | None = None


Command = (
    CreateRoom
    | UpdateRoom
    | ChangeRoomStatus
    | DeleteRoom
    | JoinRoom
    | LeaveRoom
    | RemoveParticipant
    | ChangeParticipantRole
    | CreatePrize
    | UpdatePrize
    | DeletePrize
    | DrawWinner
    | RemoveWinner
    | PublishAppEvent
    | PublishQuestion
    | SubmitAnswer
    | CloseQuestion
)
