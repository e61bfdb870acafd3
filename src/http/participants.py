"""/api/rooms/{roomId}/participants: join, leave, remove, change role."""

from __future__ import annotations

from litestar import Controller, Response, delete, patch, post
from litestar.params import JSONBody

from roomcast.domain import commands
from roomcast.http.allow import allowed, options_route
from roomcast.http.bodies import RoleBody
from roomcast.http.commands import CommandContext, take
from roomcast.http.deps import AnyRequest, PathId
from roomcast.http.openapi import command_answers
from roomcast.http.replies import CommandReply, JoinReply, ParticipantReply
from roomcast.http.responses import SuccessResponse

__all__ = ["ParticipantController"]


class ParticipantController(Controller):
    path = "/api/rooms/{room_id:str}/participants"
    tags = ["participants"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @options_route("/{participant_id:str}")
    def allow(self, request: AnyRequest) -> Response[None]:
        return allowed(request)

    @post(
        "/",
        status_code=201,
        summary="The caller joins the room",
        opt=command_answers(JoinReply),
    )
    async def join(self, room_id: PathId, request: AnyRequest) -> SuccessResponse:
        ctx = CommandContext.of(request)
        command = commands.JoinRoom(
            actor=ctx.caller, at=ctx.now(), participant_id=ctx.new_id("part")
        )
        return await ctx.run(
            room_id,
            command,
            render=take("participant:joined", "participant", "participant"),
            status_code=201,
        )

    @delete(
        "/me",
        status_code=200,
        summary="The caller leaves the room",
        opt=command_answers(CommandReply),
    )
    async def leave(self, room_id: PathId, request: AnyRequest) -> SuccessResponse:
        ctx = CommandContext.of(request)
        return await ctx.run(room_id, commands.LeaveRoom(actor=ctx.caller, at=ctx.now()))

    @delete(
        "/{participant_id:str}",
        status_code=200,
        summary="Remove a participant",
        opt=command_answers(CommandReply),
    )
    async def remove(
        self, room_id: PathId, participant_id: PathId, request: AnyRequest
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        command = commands.RemoveParticipant(
            actor=ctx.caller, at=ctx.now(), participant_id=participant_id
        )
        return await ctx.run(room_id, command)

    @patch(
        "/{participant_id:str}",
        summary="Change a participant's role",
        opt=command_answers(ParticipantReply),
    )
    async def change_role(
        self, room_id: PathId, participant_id: PathId, data: JSONBody[RoleBody], request: AnyRequest
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        command = commands.ChangeParticipantRole(
            actor=ctx.caller, at=ctx.now(), participant_id=participant_id, role=data.role
        )
        return await ctx.run(
            room_id, command, render=take("participant:updated", "participant", "participant")
        )
