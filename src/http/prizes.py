"""/api/rooms/{roomId}/prizes: create, update, delete."""

from __future__ import annotations

from litestar import Controller, Response, delete, patch, post
from litestar.params import JSONBody

from roomcast.domain import commands
from roomcast.http.allow import allowed, options_route
from roomcast.http.bodies import CreatePrizeBody, UpdatePrizeBody
from roomcast.http.commands import CommandContext, take
from roomcast.http.deps import AnyRequest, PathId
from roomcast.http.openapi import command_answers
from roomcast.http.replies import CommandReply, PrizeCreatedReply, PrizeReply
from roomcast.http.responses import SuccessResponse

__all__ = ["PrizeController"]


class PrizeController(Controller):
    path = "/api/rooms/{room_id:str}/prizes"
    tags = ["prizes"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @options_route("/{prize_id:str}")
    def allow(self, request: AnyRequest) -> Response[None]:
        return allowed(request)

    @post(
        "/",
        status_code=201,
        summary="Create a prize",
        opt=command_answers(PrizeCreatedReply),
    )
    async def create(
        self, room_id: PathId, data: JSONBody[CreatePrizeBody], request: AnyRequest
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        command = commands.CreatePrize(
            actor=ctx.caller,
            at=ctx.now(),
            prize_id=ctx.new_id("prize"),
            name=data.name,
            quantity=data.quantity,
            description=data.description,
            image_url=data.image_url,
        )
        return await ctx.run(
            room_id, command, render=take("prize:created", "prize", "prize"), status_code=201
        )

    @patch(
        "/{prize_id:str}",
        summary="Update a prize",
        opt=command_answers(PrizeReply),
    )
    async def update(
        self,
        room_id: PathId,
        prize_id: PathId,
        data: JSONBody[UpdatePrizeBody],
        request: AnyRequest,
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        command = commands.UpdatePrize(
            actor=ctx.caller,
            at=ctx.now(),
            prize_id=prize_id,
            name=data.name,
            description=data.description,
            image_url=data.image_url,
            quantity=data.quantity,
        )
        return await ctx.run(room_id, command, render=take("prize:updated", "prize", "prize"))

    @delete(
        "/{prize_id:str}",
        status_code=200,
        summary="Delete a prize (soft)",
        opt=command_answers(CommandReply),
    )
    async def remove(
        self, room_id: PathId, prize_id: PathId, request: AnyRequest
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        command = commands.DeletePrize(actor=ctx.caller, at=ctx.now(), prize_id=prize_id)
        return await ctx.run(room_id, command)
