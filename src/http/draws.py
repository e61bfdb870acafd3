"""/api/rooms/{roomId}/draws and /winners: draw a winner, remove one."""

from __future__ import annotations

from litestar import Controller, delete, post
from litestar.params import JSONBody

from roomcast.domain import commands
from roomcast.http.bodies import DrawBody
from roomcast.http.commands import CommandContext, take
from roomcast.http.deps import AnyRequest, PathId
from roomcast.http.openapi import command_answers
from roomcast.http.replies import CommandReply, WinnerReply
from roomcast.http.responses import SuccessResponse

__all__ = ["DrawController"]


class DrawController(Controller):
    path = "/api/rooms/{room_id:str}"
    tags = ["draws"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post(
        "/draws",
        status_code=201,
        summary="Draw a winner for a prize (organizer only)",
        opt=command_answers(WinnerReply),
    )
    async def draw(
        self, room_id: PathId, data: JSONBody[DrawBody], request: AnyRequest
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        # The winner follows from the room's committed seed and the draw number
        # (src/domain/draw.py, docs/audit.md); decide checks the seed.
        command = commands.DrawWinner(
            actor=ctx.caller,
            at=ctx.now(),
            prize_id=data.prize_id,
            winner_id=ctx.new_id("winner"),
            seed=await ctx.seeds.get(room_id),
        )
        return await ctx.run(
            room_id, command, render=take("winner:selected", "winner", "winner"), status_code=201
        )

    @delete(
        "/winners/{winner_id:str}",
        status_code=200,
        summary="Remove a winner",
        opt=command_answers(CommandReply),
    )
    async def remove_winner(
        self, room_id: PathId, winner_id: PathId, request: AnyRequest
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        command = commands.RemoveWinner(actor=ctx.caller, at=ctx.now(), winner_id=winner_id)
        return await ctx.run(room_id, command)
