"""Socket.IO payloads the client sends, as Structs: decoding them is the validation."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from roomcast.domain.errors import InvalidPayload

__all__ = ["ReplayRequest", "SubscribeRequest", "UnsubscribeRequest", "parse"]

T = TypeVar("T")

RoomId = Annotated[str, Meta(min_length=1, max_length=64)]
Seq = Annotated[int, Meta(ge=0)]


class _Request(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=False
):
    pass


class SubscribeRequest(_Request, frozen=True, kw_only=True):
    room_id: RoomId
    last_seq: Seq | None = None
    """Replay every event after this seq before live ones (omit: live only)."""
    batch: bool = False
    """Receive the room's events as ``room:events`` frames (arrays of payloads),
    the replay included, instead of one Socket.IO event per room event."""


class UnsubscribeRequest(_Request, frozen=True, kw_only=True):
    room_id: RoomId


class ReplayRequest(_Request, frozen=True, kw_only=True):
    room_id: RoomId
    after_seq: Seq
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


def parse(kind: type[T], args: tuple[Any, ...]) -> T:
    """The one payload argument of an event, as ``kind``; INVALID_PAYLOAD otherwise."""
    if len(args) != 1:
        raise InvalidPayload(f"expected one payload object, got {len(args)} arguments")
    try:
        return msgspec.convert(args[0], kind)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(f"invalid payload: {exc}") from None
