"""/api/rooms: create, read, update, change status, delete; and the room's event log."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.params import JSONBody, Parameter, QueryParameter

from roomcast.domain import commands
from roomcast.domain.errors import ErrorCode
from roomcast.domain.state import Participant, Prize, RoomInfo, RoomStatus, Winner
from roomcast.http import app_events
from roomcast.http.allow import allowed, options_route
from roomcast.http.app_events import AppEventBody, Limits
from roomcast.http.bodies import CreateRoomBody, StatusBody, UpdateRoomBody
from roomcast.http.commands import CommandContext, take
from roomcast.http.deps import AnyRequest, Caller, Directory, PathId, Service, Store
from roomcast.http.openapi import (
    APP,
    AS_CALLER,
    ROOM_READ,
    answers,
    command_answers,
)
from roomcast.http.replies import AppEventReply, CommandReply, RoomReply
from roomcast.http.responses import SuccessResponse, ok
from roomcast.outbox.codec import Envelope
from roomcast.service.directory import MAX_PAGE, MemberRole, RoomPage
from roomcast.service.visibility import Visibility, visible

__all__ = ["RoomController"]


class RoomView(msgspec.Struct, frozen=True, kw_only=True):
    room: RoomInfo
    participants: list[Participant]
    prizes: list[Prize]
    winners: list[Winner]
    version: int


class LogPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    events: list[Envelope]
    head_seq: int
    next_after: int


class RoomController(Controller):
    path = "/api/rooms"
    tags = ["rooms"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @options_route("/", "/{room_id:str}", "/{room_id:str}/events")
    def allow(self, request: AnyRequest) -> Response[None]:
        return allowed(request)

    @post(
        "/",
        status_code=201,
        summary="Create a room; the caller becomes its organizer",
        opt=command_answers(RoomReply),
    )
    async def create(self, data: JSONBody[CreateRoomBody], request: AnyRequest) -> SuccessResponse:
        ctx = CommandContext.of(request)
        room_id = ctx.new_id("room")
        command = commands.CreateRoom(
            actor=ctx.caller,
            at=ctx.now(),
            room_id=room_id,
            name=data.name,
            description=data.description,
            settings=data.settings,
        )
        return await ctx.run(
            room_id, command, render=take("room:created", "room", "room"), status_code=201
        )

    @get(
        "/",
        summary="The rooms the caller organizes or takes part in, newest first",
        opt=answers(AS_CALLER | {ErrorCode.NOT_FOUND}, data=RoomPage),
    )
    async def mine(
        self,
        caller: Caller,
        directory: Directory,
        status: Annotated[RoomStatus | None, QueryParameter()] = None,
        role: Annotated[MemberRole | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 20,
        cursor: Annotated[str | None, QueryParameter(max_length=512)] = None,
    ) -> SuccessResponse:
        page = await directory.rooms_of(
            caller.id, status=status, role=role, limit=limit, cursor=cursor
        )
        return ok(page)

    @get(
        "/{room_id:str}",
        summary="The room's current state and version",
        opt=answers(ROOM_READ, data=RoomView, success_headers=("ETag",)),
    )
    async def read(self, room_id: PathId, service: Service, caller: Caller) -> SuccessResponse:
        state, version = await service.readable(room_id, caller.id, "room:read")
        view = RoomView(
            room=state.info,
            participants=list(state.participants.values()),
            prizes=list(state.prizes.values()),
            winners=list(state.winners.values()),
            version=version,
        )
        return ok(view, etag=version)

    @patch(
        "/{room_id:str}",
        summary="Change name, description or settings",
        opt=command_answers(CommandReply),
    )
    async def update(
        self, room_id: PathId, data: JSONBody[UpdateRoomBody], request: AnyRequest
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        command = commands.UpdateRoom(
            actor=ctx.caller,
            at=ctx.now(),
            name=data.name,
            description=data.description,
            settings=data.settings,
        )
        return await ctx.run(room_id, command)

    @post(
        "/{room_id:str}/status",
        status_code=200,
        summary="draft → active → closed",
        opt=command_answers(CommandReply),
    )
    async def change_status(
        self, room_id: PathId, data: JSONBody[StatusBody], request: AnyRequest
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        # Activating commits to the room's secret draw seed (created here, before
        # the append, and reused by retries); closing reveals it. docs/audit.md.
        seed: bytes | None = None
        if data.status is RoomStatus.ACTIVE:
            seed = await ctx.seeds.ensure(room_id)
        elif data.status is RoomStatus.CLOSED:
            seed = await ctx.seeds.get(room_id)
        command = commands.ChangeRoomStatus(
            actor=ctx.caller, at=ctx.now(), status=data.status, seed=seed
        )
        return await ctx.run(room_id, command)

    @delete(
        "/{room_id:str}",
        status_code=200,
        summary="Delete the room (soft: the log stays)",
        opt=command_answers(CommandReply),
    )
    async def remove(self, room_id: PathId, request: AnyRequest) -> SuccessResponse:
        ctx = CommandContext.of(request)
        # Deleting an active room reveals its draw seed, as closing does.
        seed = await ctx.seeds.get(room_id)
        return await ctx.run(
            room_id, commands.DeleteRoom(actor=ctx.caller, at=ctx.now(), seed=seed)
        )

    @post(
        "/{room_id:str}/events",
        status_code=201,
        summary="An app publishes its own event to the room (app token, X-App-Id)",
        opt=command_answers(AppEventReply, security=APP),
    )
    async def publish_event(
        self, room_id: PathId, data: JSONBody[AppEventBody], request: AnyRequest, app_limits: Limits
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        return await app_events.publish(room_id, data, ctx, app_limits)

    @get(
        "/{room_id:str}/events",
        summary="The room's log, in seq order, a page at a time",
        opt=answers(ROOM_READ, data=LogPage),
    )
    async def log(
        self,
        room_id: PathId,
        service: Service,
        store: Store,
        caller: Caller,
        after: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> SuccessResponse:
        _, version = await service.readable(room_id, caller.id, "room:read")
        page = await store.read(room_id, after, limit)
        # The one read policy (docs/guarantees.md): what the caller may see of the page.
        policy = await Visibility.starting(store, room_id, caller.id, after)
        return ok(
            LogPage(events=visible(policy, page), head_seq=version, next_after=after + len(page))
        )
