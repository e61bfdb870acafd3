"""/api/rooms/{roomId}/participants: join, leave, remove, change role."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, patch, post
from litestar.params import JSONBody, Parameter

from roomcast.domain import commands
from roomcast.http.bodies import RoleBody
from roomcast.http.commands import run_command, take
from roomcast.http.deps import Caller, Clock, Service

__all__ = ["ParticipantController"]

Id = Annotated[str, Parameter(max_length=64)]


class ParticipantController(Controller):
    path = "/api/rooms/{room_id:str}/participants"
    tags = ["participants"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", status_code=201, summary="The caller joins the room")
    async def join(
        self,
        request: Request[Any, Any, Any],
        room_id: Id,
        service: Service,
        caller: Caller,
        sources: Clock,
    ) -> Response[bytes]:
        command = commands.JoinRoom(
            actor=caller, at=sources.now(), participant_id=sources.new_id("part")
        )
        return await run_command(
            request,
            service,
            caller,
            room_id,
            command,
            render=take("participant:joined", "participant", "participant"),
            status_code=201,
        )

    @delete("/me", status_code=200, summary="The caller leaves the room")
    async def leave(
        self,
        request: Request[Any, Any, Any],
        room_id: Id,
        service: Service,
        caller: Caller,
        sources: Clock,
    ) -> Response[bytes]:
        command = commands.LeaveRoom(actor=caller, at=sources.now())
        return await run_command(request, service, caller, room_id, command)

    @delete("/{participant_id:str}", status_code=200, summary="Remove a participant")
    async def remove(
        self,
        request: Request[Any, Any, Any],
        room_id: Id,
        participant_id: Id,
        service: Service,
        caller: Caller,
        sources: Clock,
    ) -> Response[bytes]:
        command = commands.RemoveParticipant(
            actor=caller, at=sources.now(), participant_id=participant_id
        )
        return await run_command(request, service, caller, room_id, command)

    @patch("/{participant_id:str}", summary="Change a participant's role")
    async def change_role(
        self,
        request: Request[Any, Any, Any],
        room_id: Id,
        participant_id: Id,
        data: JSONBody[RoleBody],
        service: Service,
        caller: Caller,
        sources: Clock,
    ) -> Response[bytes]:
        command = commands.ChangeParticipantRole(
            actor=caller, at=sources.now(), participant_id=participant_id, role=data.role
        )
        return await run_command(
            request,
            service,
            caller,
            room_id,
            command,
            render=take("participant:updated", "participant", "participant"),
        )
