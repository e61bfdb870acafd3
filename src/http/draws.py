"""/api/rooms/{roomId}/draws and /winners: draw a winner, remove one."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, post
from litestar.params import JSONBody, Parameter

from roomcast.domain import commands
from roomcast.http.bodies import DrawBody
from roomcast.http.commands import run_command, take
from roomcast.http.deps import Caller, Clock, Seeds, Service

__all__ = ["DrawController"]

Id = Annotated[str, Parameter(max_length=64)]


class DrawController(Controller):
    path = "/api/rooms/{room_id:str}"
    tags = ["draws"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/draws", status_code=201, summary="Draw a winner for a prize (organizer only)")
    async def draw(
        self,
        request: Request[Any, Any, Any],
        room_id: Id,
        data: JSONBody[DrawBody],
        service: Service,
        caller: Caller,
        sources: Clock,
        seeds: Seeds,
    ) -> Response[bytes]:
        # The winner follows from the room's committed seed and the draw number
        # (src/domain/draw.py, docs/audit.md); decide checks the seed.
        command = commands.DrawWinner(
            actor=caller,
            at=sources.now(),
            prize_id=data.prize_id,
            winner_id=sources.new_id("winner"),
            seed=await seeds.get(room_id),
        )
        return await run_command(
            request,
            service,
            caller,
            room_id,
            command,
            render=take("winner:selected", "winner", "winner"),
            status_code=201,
        )

    @delete("/winners/{winner_id:str}", status_code=200, summary="Remove a winner")
    async def remove_winner(
        self,
        request: Request[Any, Any, Any],
        room_id: Id,
        winner_id: Id,
        service: Service,
        caller: Caller,
        sources: Clock,
    ) -> Response[bytes]:
        command = commands.RemoveWinner(actor=caller, at=sources.now(), winner_id=winner_id)
        return await run_command(request, service, caller, room_id, command)
