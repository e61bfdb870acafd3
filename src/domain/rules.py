"""The permission and shape rules several deciders share; each raises a ``Rejected``."""

from __future__ import annotations

from collections.abc import Mapping

from roomcast.domain.errors import (
    AppPermissionDenied,
    InvalidPayload,
    PermissionDenied,
    RoomClosed,
    VersionConflict,
)
from roomcast.domain.state import AppGrant, Role, Room, RoomStatus

__all__ = [
    "require_app_permission",
    "require_manager",
    "require_manager_or_app",
    "require_name",
    "require_new_id",
    "require_open",
    "require_organizer",
]


def require_open(room: Room) -> None:
    if room.info.status is RoomStatus.CLOSED:
        raise RoomClosed("the room is closed", {"roomId": room.info.id})


def require_organizer(room: Room, user_id: str, action: str) -> None:
    if user_id != room.info.organizer_id:
        raise PermissionDenied(
            "only the organizer may do this", {"action": action, "roomId": room.info.id}
        )


def require_manager(room: Room, user_id: str, action: str) -> None:
    if user_id == room.info.organizer_id:
        return
    member = room.member(user_id)
    if member is None or member.role is not Role.MODERATOR:
        raise PermissionDenied(
            "only the organizer or a moderator may do this",
            {"action": action, "roomId": room.info.id},
        )


def require_app_permission(app: AppGrant, permission: str, room_id: str) -> None:
    if permission not in app.permissions:
        raise AppPermissionDenied(
            f"app {app.app_id!r} lacks the {permission!r} permission",
            {"appId": app.app_id, "permission": permission, "roomId": room_id},
        )


def require_manager_or_app(
    room: Room, user_id: str, app: AppGrant | None, permission: str, action: str
) -> None:
    """An app acts with its token's permissions; a user with their role in the room."""
    if app is not None:
        require_app_permission(app, permission, room.info.id)
    else:
        require_manager(room, user_id, action)


def require_name(name: str) -> None:
    if not name.strip():
        raise InvalidPayload("name must not be blank", {"field": "name"})


def require_new_id(existing: Mapping[str, object], new_id: str) -> None:
    """Ids come from the caller; one already in use would overwrite an entity."""
    if new_id in existing:
        raise VersionConflict("id already in use", {"id": new_id})
