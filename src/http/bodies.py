"""Request bodies: camelCase on the wire, unknown fields refused, limits stated once."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from roomcast.domain.state import Role, RoomStatus

__all__ = [
    "NO_CONTROL",
    "CreatePrizeBody",
    "CreateRoomBody",
    "DrawBody",
    "RoleBody",
    "StatusBody",
    "UpdatePrizeBody",
    "UpdateRoomBody",
]

NO_CONTROL = "^[^\\x00-\\x1f\\x7f]*$"
"""No control characters: a name is one line, and PostgreSQL refuses NUL in text."""
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Description = Annotated[str, Meta(max_length=5000)]
Url = Annotated[str, Meta(max_length=2048)]
Quantity = Annotated[int, Meta(ge=1, le=1_000_000)]
Id = Annotated[str, Meta(min_length=1, max_length=64)]


class _Body(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    pass


class CreateRoomBody(_Body, frozen=True, kw_only=True):
    name: Name
    description: Description | None = None
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


class UpdateRoomBody(_Body, frozen=True, kw_only=True):
    name: Name | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    settings: dict[str, Any] | UnsetType = UNSET


class StatusBody(_Body, frozen=True, kw_only=True):
    status: RoomStatus


class RoleBody(_Body, frozen=True, kw_only=True):
    role: Role


class CreatePrizeBody(_Body, frozen=True, kw_only=True):
    name: Name
    quantity: Quantity = 1
    description: Description | None = None
    image_url: Url | None = None


class UpdatePrizeBody(_Body, frozen=True, kw_only=True):
    name: Name | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    image_url: Url | UnsetType | None = UNSET
    quantity: Quantity | UnsetType = UNSET


class DrawBody(_Body, frozen=True, kw_only=True):
    prize_id: Id
