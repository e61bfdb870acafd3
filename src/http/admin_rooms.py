"""``GET /api/admin/rooms`` (admin role): per room with subscribers on this node, or named
with ``roomId``, its head seq, chain head, outbox depth and relay lag (the age of its
oldest row waiting in the outbox). Read by the operator page, ``/ops``."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from litestar import get
from litestar.params import QueryParameter

from roomcast.domain.errors import ErrorCode, InvalidPayload
from roomcast.http.deps import Admin, NodeStats, Store
from roomcast.http.openapi import ADMIN, AUTHENTICATED, answers
from roomcast.http.responses import SuccessResponse, ok

__all__ = ["admin_rooms"]

_MAX_ROOMS = 200
_MAX_ASKED = 50
"""``roomId`` values per request: with ids of printable ASCII up to 64 characters the
request line stays within the request-size limit."""
_ROOM_ID = re.compile(r"[!-~]{1,64}")


class RoomLine(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    room_id: str
    subscribers: int
    head_seq: int
    chain_head: str
    outbox_depth: int
    relay_lag_seconds: float


class AdminRooms(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    node_id: str
    rooms: list[RoomLine]


@get(
    "/api/admin/rooms",
    tags=["operations"],
    summary="Head seq, chain head, outbox depth and relay lag of this node's rooms (admin)",
    opt=answers(
        AUTHENTICATED | {ErrorCode.PERMISSION_DENIED},
        data=AdminRooms,
        security=ADMIN,
        parameters={"roomId": {"items": {"pattern": "^[!-~]+$", "minLength": 1, "maxLength": 64}}},
    ),
)
async def admin_rooms(
    admin: Admin,
    node_stats: NodeStats,
    store: Store,
    room_id: Annotated[
        list[str] | None, QueryParameter(name="roomId", max_items=_MAX_ASKED, required=False)
    ] = None,
) -> SuccessResponse:
    if any(not _ROOM_ID.fullmatch(asked) for asked in room_id or ()):
        raise InvalidPayload(
            "roomId must be 1 to 64 printable ASCII characters", {"parameter": "roomId"}
        )
    stats = node_stats()
    subscribers = stats.get("subscribers")
    counts: dict[str, int] = dict(subscribers) if isinstance(subscribers, dict) else {}
    wanted = sorted({*counts, *(room_id or [])})[:_MAX_ROOMS]
    heads = await store.stream_heads(wanted)
    return ok(
        AdminRooms(
            node_id=str(stats.get("nodeId", "")),
            rooms=[
                RoomLine(
                    room_id=h.stream_id,
                    subscribers=counts.get(h.stream_id, 0),
                    head_seq=h.head_seq,
                    chain_head=h.chain_head,
                    outbox_depth=h.outbox_depth,
                    relay_lag_seconds=h.outbox_oldest_seconds,
                )
                for h in heads
            ],
        )
    )
