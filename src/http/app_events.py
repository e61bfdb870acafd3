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
from roomcast.service.ratelimit import RateLimiter

__all__ = ["AppEventBody", "AppLimits", "Limits", "publish"]


@dataclass(frozen=True, slots=True)
class AppLimits:
    """Seed 003: at most 10 app events per second per room, 600 per minute per app.
    Per node: with N nodes behind a balancer a room can see up to N times that."""

    per_room: RateLimiter = field(
        default_factory=lambda: RateLimiter(10, 1.0, scope="app events per room")
    )
    per_app: RateLimiter = field(
        default_factory=lambda: RateLimiter(600, 60.0, scope="app events per app")
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
    limits.per_room.hit(room_id)
    limits.per_app.hit(app.app_id)
    command = commands.PublishAppEvent(
        actor=ctx.caller, at=ctx.now(), app=app, name=data.event, data=data.data
    )
    return await ctx.run(room_id, command, render=take(data.event, None, "event"), status_code=201)
