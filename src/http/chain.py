"""``GET /api/rooms/{roomId}/chain``: a page of the room's log with the columns its hash
chain covers, so a verifier outside the database (the room page's WebCrypto verifier)
can recompute every hash and every draw (docs/audit.md).

The same readers as the log (the room's organizer and current participants); the
page holds each event's stored ``data`` as a JSON **string**, the exact text that was
hashed, never re-encoded.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get
from litestar.params import Parameter

from roomcast.http.deps import Caller, PathId, Service, Store
from roomcast.http.openapi import ROOM_READ, answers
from roomcast.http.responses import SuccessResponse, ok
from roomcast.outbox.store import ChainRow

__all__ = ["room_chain"]


class ChainPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    events: list[ChainRow]
    head_seq: int
    next_after: int


@get(
    "/api/rooms/{room_id:str}/chain",
    tags=["rooms"],
    summary="The room's log with the hashed columns (for independent verifiers)",
    opt=answers(ROOM_READ, data=ChainPage),
)
async def room_chain(
    room_id: PathId,
    service: Service,
    store: Store,
    caller: Caller,
    after: Annotated[int, Parameter(ge=0)] = 0,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 500,
) -> SuccessResponse:
    _, version = await service.readable(room_id, caller.id, "room:read")
    events = await store.read_chain(room_id, after, limit)
    return ok(ChainPage(events=events, head_seq=version, next_after=after + len(events)))
