"""Commands: what a caller asks of a room. Imperative names; all inputs injected.

Every command carries who asks (``actor``) and when (``at``, from the caller's
clock), and any id or entropy its events will need, so ``decide`` stays pure.
Partial updates use ``msgspec.UNSET`` for "leave as it is".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from roomcast.domain.state import Role, RoomStatus, UserRef

__all__ = [
    "ChangeParticipantRole",
    "ChangeRoomStatus",
    "Command",
    "CreatePrize",
    "CreateRoom",
    "DeletePrize",
    "DeleteRoom",
    "DrawWinner",
    "JoinRoom",
    "LeaveRoom",
    "RemoveParticipant",
    "RemoveWinner",
    "UpdatePrize",
    "UpdateRoom",
]


class _Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="command"):
    actor: UserRef
    at: datetime


class CreateRoom(_Command, tag="create_room"):
    room_id: str
    name: str
    description: str | None = None
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


class UpdateRoom(_Command, tag="update_room"):
    name: str | UnsetType = UNSET
    description: str | None | UnsetType = UNSET
    settings: dict[str, Any] | UnsetType = UNSET


class ChangeRoomStatus(_Command, tag="change_room_status"):
    status: RoomStatus


class DeleteRoom(_Command, tag="delete_room"):
    pass


class JoinRoom(_Command, tag="join_room"):
    participant_id: str
    """The id the new participation gets (a rejoin is a new participation)."""


class LeaveRoom(_Command, tag="leave_room"):
    pass


class RemoveParticipant(_Command, tag="remove_participant"):
    participant_id: str


class ChangeParticipantRole(_Command, tag="change_participant_role"):
    participant_id: str
    role: Role


class CreatePrize(_Command, tag="create_prize"):
    prize_id: str
    name: str
    quantity: int = 1
    description: str | None = None
    image_url: str | None = None


class UpdatePrize(_Command, tag="update_prize"):
    prize_id: str
    name: str | UnsetType = UNSET
    description: str | None | UnsetType = UNSET
    image_url: str | None | UnsetType = UNSET
    quantity: int | UnsetType = UNSET


class DeletePrize(_Command, tag="delete_prize"):
    prize_id: str


class DrawWinner(_Command, tag="draw_winner"):
    prize_id: str
    winner_id: str
    entropy: int
    """Non-negative; picks ``eligible[entropy % len(eligible)]`` (see ``draw.pick``)."""


class RemoveWinner(_Command, tag="remove_winner"):
    winner_id: str


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
)
