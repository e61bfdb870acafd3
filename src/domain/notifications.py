"""A user's notifications (seed 003 "User Notifications"): one stream per user.

The stream ``user:{userId}`` has its own dense seq, so a client replays its
notifications after a reconnect exactly as it replays a room. Only the owner
reads or marks them; notifications are created by the server (for example when
the user wins a prize: ``roomcast.service.reactions``).

The payload follows seed 003, whose ``type`` is the notification's kind
(``winner_selected``): the event name travels in ``event`` for these events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from msgspec import structs

from roomcast.domain.decider import Decider
from roomcast.domain.errors import InvalidPayload, NotificationNotFound, PermissionDenied
from roomcast.domain.rules import require_new_id
from roomcast.domain.state import UserRef

__all__ = [
    "INBOXES",
    "INBOX_STATE_VERSION",
    "Inbox",
    "InboxCommand",
    "InboxEvent",
    "MarkRead",
    "Notification",
    "NotificationRead",
    "NotificationReceived",
    "Notify",
    "decide",
    "evolve",
    "inbox_stream",
    "owner_of",
]

_PREFIX = "user:"


def inbox_stream(user_id: str) -> str:
    """The stream id of a user's notifications."""
    return f"{_PREFIX}{user_id}"


def owner_of(stream_id: str) -> str | None:
    """The user whose inbox ``stream_id`` is, or None for any other stream."""
    return stream_id[len(_PREFIX) :] if stream_id.startswith(_PREFIX) else None


class Notification(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    type: str
    """The kind, e.g. ``winner_selected``."""
    title: str
    message: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    read: bool = False
    created_at: datetime


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", rename="camel"):
    user_id: str
    timestamp: datetime


class NotificationReceived(_Event, frozen=True, kw_only=True, tag="notification:received"):
    """Seed 003's payload (``id``, ``type``, ``title``, ``message``, ``data``, ``read``,
    ``createdAt``) plus ``userId`` and ``timestamp``."""

    id: str
    type: str
    title: str
    message: str
    data: dict[str, Any]
    read: bool = False
    created_at: datetime


class NotificationRead(_Event, frozen=True, kw_only=True, tag="notification:read"):
    notification_id: str
    read_at: datetime


InboxEvent = NotificationReceived | NotificationRead


INBOX_STATE_VERSION = 1
"""The version of ``Inbox`` as a snapshot holds it: bump it with any change to ``Inbox``
(or ``Notification``) or to what ``evolve`` folds into it, and record the new
fingerprint in tests/unit/test_state_version.py."""


class Inbox(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    user_id: str
    notifications: dict[str, Notification] = msgspec.field(default_factory=dict)
    unread: int = 0


class _Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="command"):
    actor: UserRef
    at: datetime


class Notify(_Command, frozen=True, kw_only=True, tag="notify"):
    """Put a notification in ``user_id``'s inbox (the server's own doing)."""

    user_id: str
    notification_id: str
    type: str
    title: str
    message: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class MarkRead(_Command, frozen=True, kw_only=True, tag="mark_read"):
    notification_id: str


InboxCommand = Notify | MarkRead


def decide(command: InboxCommand, state: Inbox | None) -> list[InboxEvent]:
    match command:
        case Notify():
            if not command.type.strip() or not command.title.strip():
                raise InvalidPayload("a notification needs a type and a title")
            if state is not None:
                require_new_id(state.notifications, command.notification_id)
            return [
                NotificationReceived(
                    user_id=command.user_id,
                    timestamp=command.at,
                    id=command.notification_id,
                    type=command.type,
                    title=command.title,
                    message=command.message,
                    data=command.data,
                    created_at=command.at,
                )
            ]
        case MarkRead():
            found = None if state is None else state.notifications.get(command.notification_id)
            if found is None or state is None:
                raise NotificationNotFound(
                    "no such notification", {"notificationId": command.notification_id}
                )
            if command.actor.id != state.user_id:
                raise PermissionDenied(
                    "only its owner may mark a notification read",
                    {"action": "notification:mark_read"},
                )
            if found.read:
                return []
            return [
                NotificationRead(
                    user_id=state.user_id,
                    timestamp=command.at,
                    notification_id=found.id,
                    read_at=command.at,
                )
            ]
    raise AssertionError(f"unhandled command {command!r}")  # pragma: no cover


def evolve(state: Inbox | None, event: InboxEvent) -> Inbox:
    inbox = state or Inbox(user_id=event.user_id)
    items = dict(inbox.notifications)
    match event:
        case NotificationReceived():
            items[event.id] = Notification(
                id=event.id,
                type=event.type,
                title=event.title,
                message=event.message,
                data=event.data,
                created_at=event.created_at,
            )
            return structs.replace(inbox, notifications=items, unread=inbox.unread + 1)
        case NotificationRead():
            items[event.notification_id] = structs.replace(items[event.notification_id], read=True)
            return structs.replace(inbox, notifications=items, unread=inbox.unread - 1)
    raise AssertionError(f"unhandled event {event!r}")  # pragma: no cover


_event_decoder = msgspec.json.Decoder(InboxEvent)


def _decode(data: bytes | str) -> InboxEvent:
    event: InboxEvent = _event_decoder.decode(data)
    return event


INBOXES: Decider[InboxCommand, InboxEvent, Inbox | None] = Decider(
    name="inbox",
    decide=decide,
    evolve=evolve,
    decode_event=_decode,
    state_type=Inbox,
    state_version=INBOX_STATE_VERSION,
)
