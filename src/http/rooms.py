"""/api/rooms: create, read, update, change status, delete; and the room's event log."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, patch, post
from litestar.params import JSONBody, Parameter

from roomcast import wire
from roomcast.domain import commands
from roomcast.domain.errors import PermissionDenied, RoomNotFound
from roomcast.domain.state import Participant, Prize, Room, RoomInfo, RoomStatus, UserRef, Winner
from roomcast.http.bodies import CreateRoomBody, StatusBody, UpdateRoomBody
from roomcast.http.commands import run_command, take
from roomcast.http.deps import Caller, Clock, Seeds, Service, Store
from roomcast.outbox.codec import Envelope
from roomcast.service.rooms import RoomService

__all__ = ["RoomController", "readable_room"]

RoomId = Annotated[str, Parameter(max_length=64)]


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


async def readable_room(service: RoomService, room_id: str, caller: UserRef) -> tuple[Room, int]:
    """The room at its head, if it exists and ``caller`` may read it."""
    loaded = await service.current(room_id)
    state = loaded.state
    if state is None or state.deleted:
        raise RoomNotFound("room not found", {"roomId": room_id})
    if not state.can_read(caller.id):
        raise PermissionDenied(
            "only the organizer and participants may read this room",
            {"action": "room:read", "roomId": room_id},
        )
    return state, loaded.version


def _json(data: object, *, etag: int | None = None) -> Response[bytes]:
    headers = {} if etag is None else {"ETag": f'"{etag}"'}
    return Response(
        content=wire.encode(wire.success(data)), media_type=MediaType.JSON, headers=headers
    )


class RoomController(Controller):
    path = "/api/rooms"
    tags = ["rooms"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", status_code=201, summary="Create a room; the caller becomes its organizer")
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CreateRoomBody],
        service: Service,
        caller: Caller,
        sources: Clock,
    ) -> Response[bytes]:
        room_id = sources.new_id("room")
        command = commands.CreateRoom(
            actor=caller,
            at=sources.now(),
            room_id=room_id,
            name=data.name,
            description=data.description,
            settings=data.settings,
        )
        return await run_command(
            request,
            service,
            caller,
            room_id,
            command,
            render=take("room:created", "room", "room"),
            status_code=201,
        )

    @get("/{room_id:str}", summary="The room's current state and version")
    async def read(self, room_id: RoomId, service: Service, caller: Caller) -> Response[bytes]:
        state, version = await readable_room(service, room_id, caller)
        view = RoomView(
            room=state.info,
            participants=list(state.participants.values()),
            prizes=list(state.prizes.values()),
            winners=list(state.winners.values()),
            version=version,
        )
        return _json(view, etag=version)

    @patch("/{room_id:str}", summary="Change name, description or settings")
    async def update(
        self,
        request: Request[Any, Any, Any],
        room_id: RoomId,
        data: JSONBody[UpdateRoomBody],
        service: Service,
        caller: Caller,
        sources: Clock,
    ) -> Response[bytes]:
        command = commands.UpdateRoom(
            actor=caller,
            at=sources.now(),
            name=data.name,
            description=data.description,
            settings=data.settings,
        )
        return await run_command(request, service, caller, room_id, command)

    @post("/{room_id:str}/status", status_code=200, summary="draft → active → closed")
    async def change_status(
        self,
        request: Request[Any, Any, Any],
        room_id: RoomId,
        data: JSONBody[StatusBody],
        service: Service,
        caller: Caller,
        sources: Clock,
        seeds: Seeds,
    ) -> Response[bytes]:
        # Activating commits to the room's secret draw seed (created here, before
        # the append, and reused by retries); closing reveals it. docs/audit.md.
        seed: bytes | None = None
        if data.status is RoomStatus.ACTIVE:
            seed = await seeds.ensure(room_id)
        elif data.status is RoomStatus.CLOSED:
            seed = await seeds.get(room_id)
        command = commands.ChangeRoomStatus(
            actor=caller, at=sources.now(), status=data.status, seed=seed
        )
        return await run_command(request, service, caller, room_id, command)

    @delete("/{room_id:str}", status_code=200, summary="Delete the room (soft: the log stays)")
    async def remove(
        self,
        request: Request[Any, Any, Any],
        room_id: RoomId,
        service: Service,
        caller: Caller,
        sources: Clock,
        seeds: Seeds,
    ) -> Response[bytes]:
        # Deleting an active room reveals its draw seed, as closing does.
        command = commands.DeleteRoom(actor=caller, at=sources.now(), seed=await seeds.get(room_id))
        return await run_command(request, service, caller, room_id, command)

    @get("/{room_id:str}/events", summary="The room's log, in seq order, a page at a time")
    async def log(
        self,
        room_id: RoomId,
        service: Service,
        store: Store,
        caller: Caller,
        after: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> Response[bytes]:
        _, version = await readable_room(service, room_id, caller)
        events = await store.read(room_id, after, limit)
        next_after = after + len(events)
        return _json(LogPage(events=events, head_seq=version, next_after=next_after))
