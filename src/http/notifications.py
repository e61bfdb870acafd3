"""/api/notifications: the caller's own inbox, and marking a notification read."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import Parameter, QueryParameter

from roomcast.domain.errors import ErrorCode
from roomcast.domain.notifications import Notification
from roomcast.http.deps import Caller, Notifications, PathId
from roomcast.http.openapi import AS_CALLER, answers
from roomcast.http.responses import SuccessResponse, ok

__all__ = ["NotificationController"]


class InboxView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    notifications: list[Notification]
    unread_count: int
    head_seq: int
    """Seq of the caller's notification stream: ``notification:replay`` resumes after it."""


class ReadView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    notification_id: str
    read: bool
    head_seq: int


class NotificationController(Controller):
    path = "/api/notifications"
    tags = ["notifications"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/",
        summary="The caller's notifications, newest first",
        opt=answers(AS_CALLER, data=InboxView),
    )
    async def list_inbox(
        self,
        caller: Caller,
        notifications: Notifications,
        unread_only: Annotated[bool, QueryParameter(name="unreadOnly")] = False,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> SuccessResponse:
        items, unread, head = await notifications.inbox(caller.id)
        if unread_only:
            items = [n for n in items if not n.read]
        return ok(InboxView(notifications=items[:limit], unread_count=unread, head_seq=head))

    @post(
        "/{notification_id:str}/read",
        status_code=200,
        summary="Mark one notification read",
        opt=answers(AS_CALLER | {ErrorCode.NOTIFICATION_NOT_FOUND}, data=ReadView),
    )
    async def mark_read(
        self, notification_id: PathId, caller: Caller, notifications: Notifications
    ) -> SuccessResponse:
        outcome = await notifications.mark_read(caller, notification_id)
        return ok(
            ReadView(notification_id=notification_id, read=True, head_seq=outcome.result.version)
        )
