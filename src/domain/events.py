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

from roomcast.domain.state import Participant, Prize, Role, RoomInfo, RoomStatus, Winner

__all__ = [
    "EVENT_TYPES",
    "Event",
    "ParticipantChanges",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantUpdated",
    "PrizeChanges",
    "PrizeCreated",
    "PrizeDeleted",
    "PrizeUpdated",
    "RoomChanges",
    "RoomCreated",
    "RoomDeleted",
    "RoomStatusChanged",
    "RoomUpdated",
    "WinnerRemoved",
    "WinnerSelected",
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


Event = (
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
)

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
)
