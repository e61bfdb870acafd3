"""Users' notifications: put one in an inbox, mark one read, list an inbox.

Each user's inbox is its own stream (``user:{userId}``, ``domain.notifications``)
run by the same ``StreamService`` as rooms: dense seq, hash chain, outbox, relay,
replay. ``notify`` takes an idempotency key so a reaction that runs twice (the
relay is at-least-once) still notifies once.
"""

from __future__ import annotations

from typing import Any

from roomcast.domain.notifications import (
    INBOXES,
    Inbox,
    InboxCommand,
    MarkRead,
    Notification,
    Notify,
    inbox_stream,
)
from roomcast.domain.state import UserRef
from roomcast.outbox.store import EventStore
from roomcast.service.sources import Sources
from roomcast.service.streams import Idempotency, Outcome, StreamService, fingerprint

__all__ = ["NOTIFIER", "NotificationService"]

NOTIFIER = UserRef(id="roomcast:notifications", name="roomcast")
"""The actor of server-made notifications."""


class NotificationService:
    def __init__(
        self,
        store: EventStore,
        sources: Sources,
        *,
        on_commit: Any = None,
    ) -> None:
        self._streams: StreamService[InboxCommand, Inbox | None] = StreamService(
            store, INBOXES, on_commit=on_commit
        )
        self._sources = sources

    async def notify(
        self,
        user_id: str,
        *,
        type: str,
        title: str,
        message: str,
        data: dict[str, Any],
        once_for: str,
    ) -> Outcome:
        """Notify ``user_id``; ``once_for`` names the cause, so a repeat is a no-op."""
        command = Notify(
            actor=NOTIFIER,
            at=self._sources.now(),
            user_id=user_id,
            notification_id=self._sources.new_id("notif"),
            type=type,
            title=title,
            message=message,
            data=data,
        )
        key = Idempotency(
            principal=NOTIFIER.id, key=once_for, fingerprint=fingerprint(user_id, once_for)
        )
        return await self._streams.execute(inbox_stream(user_id), command, idempotency=key)

    async def mark_read(self, user: UserRef, notification_id: str) -> Outcome:
        command = MarkRead(actor=user, at=self._sources.now(), notification_id=notification_id)
        return await self._streams.execute(inbox_stream(user.id), command)

    async def inbox(self, user_id: str) -> tuple[list[Notification], int, int]:
        """The user's notifications (newest first), unread count and stream head."""
        loaded = await self._streams.current(inbox_stream(user_id))
        if loaded.state is None:
            return [], 0, loaded.version
        items = sorted(
            loaded.state.notifications.values(), key=lambda n: (n.created_at, n.id), reverse=True
        )
        return items, loaded.state.unread, loaded.version
