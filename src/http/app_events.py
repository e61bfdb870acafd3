"""POST /api/rooms/{roomId}/events: an app publishes its own event to a room (seed 003).

The app's token must carry ``realtime:publish`` and the request ``X-App-Id``
(``roomcast.http.auth``). The event goes through the log like any other:
durable, numbered, in the hash chain, relayed and replayable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from litestar.di import NamedDependency
from msgspec import Meta

from roomcast.domain import commands
from roomcast.http.commands import CommandContext, take
from roomcast.http.responses import SuccessResponse
from roomcast.service.ratelimit import Limiter, RateLimiter

__all__ = ["PER_APP", "PER_ROOM", "AppEventBody", "AppLimits", "Limits", "publish"]


PER_ROOM = (10, 1.0, "app events per room")
PER_APP = (600, 60.0, "app events per app")


@dataclass(frozen=True, slots=True)
class AppLimits:
    """Seed 003: at most 10 app events per second per room, 600 per minute per app.
    In this process by default; with Redis (bootstrap) for the whole cluster."""

    per_room: Limiter = field(
        default_factory=lambda: RateLimiter(PER_ROOM[0], PER_ROOM[1], scope=PER_ROOM[2])
    )
    per_app: Limiter = field(
        default_factory=lambda: RateLimiter(PER_APP[0], PER_APP[1], scope=PER_APP[2])
    )


Limits = NamedDependency[AppLimits]


class AppEventBody(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    event: Annotated[str, Meta(min_length=3, max_length=164)]
    """``{appId}:{name}``."""
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    """The payload, delivered verbatim under ``data`` (request bodies are capped by
    ROOMCAST_MAX_BODY_BYTES)."""


async def publish(
    room_id: str, data: AppEventBody, ctx: CommandContext, limits: AppLimits
) -> SuccessResponse:
    """The route lives on ``RoomController`` (one route per path: it also serves GET)."""
    app = ctx.require_app()
    await limits.per_room.admit(room_id)
    await limits.per_app.admit(app.app_id)
    command = commands.PublishAppEvent(
        actor=ctx.caller, at=ctx.now(), app=app, name=data.event, data=data.data
    )
    return await ctx.run(room_id, command, render=take(data.event, None, "event"), status_code=201)
