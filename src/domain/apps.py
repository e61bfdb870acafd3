"""Application events (seed 003): an app publishes its own named events to a room.

An app acts with its token's permissions (``AppGrant``), never a user's role.
Its event names are ``{appId}:{name}``; the platform's own namespaces (``room``,
``quiz``, ``presence`` …) cannot be an app id, so an app can never forge a
platform event. The data is the app's, stored and relayed verbatim.
"""

from __future__ import annotations

import re

from roomcast.domain.commands import PublishAppEvent
from roomcast.domain.errors import InvalidPayload
from roomcast.domain.events import PLATFORM_NAMES, AppEvent, Event
from roomcast.domain.rules import require_app_permission, require_open
from roomcast.domain.state import Room

__all__ = ["PUBLISH", "RESERVED_FIELDS", "RESERVED_NAMESPACES", "publish", "valid_app_id"]

PUBLISH = "realtime:publish"
"""The permission an app needs to publish events or run a quiz."""

RESERVED_NAMESPACES: frozenset[str] = frozenset(
    {name.split(":", 1)[0] for name in PLATFORM_NAMES}
    | {"app", "connect", "disconnect", "error", "notification", "presence", "roomcast"}
    | {"system", "token", "typing", "user"}
)

RESERVED_FIELDS: frozenset[str] = frozenset(
    {"eventId", "seq", "type", "roomId", "appId", "timestamp", "replayed"}
)
"""Fields roomcast puts beside an app's own in its broadcast payload: an app may not use them."""

_APP_ID = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}")


def valid_app_id(app_id: str) -> bool:
    return _APP_ID.fullmatch(app_id) is not None and app_id not in RESERVED_NAMESPACES


def publish(command: PublishAppEvent, room: Room) -> list[Event]:
    app = command.app
    require_app_permission(app, PUBLISH, room.info.id)
    require_open(room)
    if not valid_app_id(app.app_id):
        raise InvalidPayload(
            f"{app.app_id!r} cannot publish events: app ids are lowercase letters, digits, "
            f"'_' and '-', and not one of the platform's namespaces",
            {"appId": app.app_id},
        )
    prefix = f"{app.app_id}:"
    name = command.name
    if not name.startswith(prefix) or _NAME.fullmatch(name[len(prefix) :]) is None:
        raise InvalidPayload(
            f"the event name must be {prefix}<name> (letters, digits, '_', '.', ':', '-')",
            {"field": "event", "expectedPrefix": prefix},
        )
    clash = sorted(RESERVED_FIELDS.intersection(command.data))
    if clash:
        raise InvalidPayload(
            f"data.{clash[0]} is reserved: the broadcast carries roomcast's own "
            f"{', '.join(sorted(RESERVED_FIELDS))} beside the app's fields",
            {"field": f"data.{clash[0]}", "reserved": sorted(RESERVED_FIELDS)},
        )
    return [
        AppEvent(
            type=name,
            room_id=room.info.id,
            timestamp=command.at,
            app_id=app.app_id,
            data=command.data,
        )
    ]
