"""The rooms each user organizes or takes part in (``room_members``, ``room_directory``).

Both tables are a read model of the log kept by a trigger in the appending
transaction (schema.sql, docs/decisions/0014-room-directory.md); this module
only reads them. A page is one index range of one user's rows, newest room
first, continued after the last row of the previous page (keyset, no offset).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from roomcast.outbox.errors import map_db_errors

__all__ = ["DirectoryRow", "RoomDirectoryStore"]


class DirectoryRow(msgspec.Struct, frozen=True, kw_only=True):
    room_id: str
    name: str
    status: str
    organizer_id: str
    created_at: datetime
    role: str
    head_seq: int


_COLUMNS = """
    SELECT d.stream_id, d.name, d.status, d.organizer_id, d.created_at, m.role, s.version
    FROM room_members m
    JOIN room_directory d ON d.stream_id = m.stream_id
    JOIN streams s ON s.stream_id = m.stream_id
"""
_FILTERS = """
      AND NOT d.deleted
      AND ($2::text IS NULL OR d.status = $2)
      AND ($3::text IS NULL OR m.role = $3)
"""
_ORDER = """
    ORDER BY m.room_created_at DESC, m.stream_id DESC
    LIMIT $4
"""
_FIRST_PAGE = _COLUMNS + "WHERE m.user_id = $1" + _FILTERS + _ORDER
_NEXT_PAGE = (
    _COLUMNS
    + "WHERE m.user_id = $1 AND (m.room_created_at, m.stream_id) < ($5, $6)"
    + _FILTERS
    + _ORDER
)


class RoomDirectoryStore:
    """Reads pages of a user's rooms."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def page(
        self,
        user_id: str,
        *,
        status: str | None,
        role: str | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[DirectoryRow]:
        """Up to ``limit`` rooms of ``user_id``, newest first, after the ``(createdAt,
        roomId)`` of the previous page's last row."""
        with map_db_errors():
            if after is None:
                rows = await self._pool.fetch(_FIRST_PAGE, user_id, status, role, limit)
            else:
                rows = await self._pool.fetch(
                    _NEXT_PAGE, user_id, status, role, limit, after[0], after[1]
                )
        return [
            DirectoryRow(
                room_id=r["stream_id"],
                name=r["name"],
                status=r["status"],
                organizer_id=r["organizer_id"],
                created_at=r["created_at"],
                role=r["role"],
                head_seq=r["version"],
            )
            for r in rows
        ]
