"""/api/rooms/{roomId}/prizes: create, update, delete."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, patch, post
from litestar.params import JSONBody, Parameter

from roomcast.domain import commands
from roomcast.http.bodies import CreatePrizeBody, UpdatePrizeBody
from roomcast.http.commands import run_command, take
from roomcast.http.deps import Caller, Clock, Service

__all__ = ["PrizeController"]

Id = Annotated[str, Parameter(max_length=64)]


class PrizeController(Controller):
    path = "/api/rooms/{room_id:str}/prizes"
    tags = ["prizes"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", status_code=201, summary="Create a prize")
    async def create(
        self,
        request: Request[Any, Any, Any],
        room_id: Id,
        data: JSONBody[CreatePrizeBody],
        service: Service,
        caller: Caller,
        sources: Clock,
    ) -> Response[bytes]:
        command = commands.CreatePrize(
            actor=caller,
            at=sources.now(),
            prize_id=sources.new_id("prize"),
            name=data.name,
            quantity=data.quantity,
            description=data.description,
            image_url=data.image_url,
        )
        return await run_command(
            request,
            service,
            caller,
            room_id,
            command,
            render=take("prize:created", "prize", "prize"),
            status_code=201,
        )

    @patch("/{prize_id:str}", summary="Update a prize")
    async def update(
        self,
        request: Request[Any, Any, Any],
        room_id: Id,
        prize_id: Id,
        data: JSONBody[UpdatePrizeBody],
        service: Service,
        caller: Caller,
        sources: Clock,
    ) -> Response[bytes]:
        command = commands.UpdatePrize(
            actor=caller,
            at=sources.now(),
            prize_id=prize_id,
            name=data.name,
            description=data.description,
            image_url=data.image_url,
            quantity=data.quantity,
        )
        return await run_command(
            request,
            service,
            caller,
            room_id,
            command,
            render=take("prize:updated", "prize", "prize"),
        )

    @delete("/{prize_id:str}", status_code=200, summary="Delete a prize (soft)")
    async def remove(
        self,
        request: Request[Any, Any, Any],
        room_id: Id,
        prize_id: Id,
        service: Service,
        caller: Caller,
        sources: Clock,
    ) -> Response[bytes]:
        command = commands.DeletePrize(actor=caller, at=sources.now(), prize_id=prize_id)
        return await run_command(request, service, caller, room_id, command)
