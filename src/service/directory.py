"""``GET /api/rooms``: the rooms a user organizes or takes part in, a page at a time.

The cursor is opaque to clients: the last row's ``(createdAt, roomId)``, base64url.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import msgspec

from roomcast.domain.errors import InvalidPayload
from roomcast.domain.state import RoomStatus
from roomcast.outbox.directory import DirectoryRow, RoomDirectoryStore

__all__ = ["MAX_PAGE", "MemberRole", "RoomDirectory", "RoomPage", "RoomSummary"]

MAX_PAGE = 100

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MemberRole(StrEnum):
    """The caller's part in a room: its organizer, or a participant with a role."""

    ORGANIZER = "organizer"
    PARTICIPANT = "participant"
    MODERATOR = "moderator"


class RoomSummary(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    name: str
    status: RoomStatus
    role: MemberRole
    organizer_id: str
    created_at: datetime
    head_seq: int
    """The seq of the room's last event (its version): ``lastSeq`` for a subscribe."""


class RoomPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    rooms: list[RoomSummary]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; null on the last one."""


class RoomDirectory:
    """Pages of one user's rooms, newest first (by the room's creation)."""

    def __init__(self, store: RoomDirectoryStore) -> None:
        self._store = store

    async def rooms_of(
        self,
        user_id: str,
        *,
        status: RoomStatus | None = None,
        role: MemberRole | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> RoomPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidPayload(f"limit must be 1 to {MAX_PAGE}", {"limit": limit})
        after = _decode_cursor(cursor) if cursor else None
        rows = await self._store.page(
            user_id,
            status=status.value if status else None,
            role=role.value if role else None,
            limit=limit + 1,  # one more tells whether there is a next page
            after=after,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1]) if more else None
        return RoomPage(rooms=[_summary(r) for r in rows], next_cursor=next_cursor)


def _summary(row: DirectoryRow) -> RoomSummary:
    return RoomSummary(
        id=row.room_id,
        name=row.name,
        status=RoomStatus(row.status),
        role=MemberRole(row.role),
        organizer_id=row.organizer_id,
        created_at=row.created_at,
        head_seq=row.head_seq,
    )


def _encode_cursor(row: DirectoryRow) -> str:
    # Whole microseconds since the epoch: exact, unlike a float timestamp.
    micros = (row.created_at - _EPOCH) // timedelta(microseconds=1)
    raw = msgspec.json.encode([micros, row.room_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_cursor = msgspec.json.Decoder(tuple[int, str])


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, room_id = _cursor.decode(raw)
        return _EPOCH + timedelta(microseconds=micros), room_id
    except (binascii.Error, ValueError, OverflowError, msgspec.DecodeError):
        raise InvalidPayload(
            "cursor is not one this server gave out", {"parameter": "cursor"}
        ) from None
