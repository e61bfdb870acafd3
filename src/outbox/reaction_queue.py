"""The reaction queue and its dead letters (tables ``reaction_queue``, ``dead_letters``).

The relay fills the queue (``sql.RELAY_DONE_REACTING``, in the statement that
deletes the events' outbox rows); the reactor (``service/reactions.py``) takes
what is due, and records each outcome here: done, later, or dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec

from roomcast.outbox import sql
from roomcast.outbox.errors import map_db_errors

__all__ = ["DeadLetter", "Job", "ReactionQueue"]


@dataclass(frozen=True, slots=True)
class Job:
    global_id: int
    stream_id: str
    event: str
    payload: msgspec.Raw
    attempts: int
    """Failed tries so far."""


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    global_id: int
    stream_id: str
    seq: int
    event: str
    attempts: int
    last_error: str | None
    failed_at: datetime


class ReactionQueue:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def due(self, limit: int) -> list[Job]:
        with map_db_errors():
            rows = await self._pool.fetch(sql.REACTIONS_DUE, limit)
        return [
            Job(
                global_id=r["global_id"],
                stream_id=r["stream_id"],
                event=r["type"],
                payload=msgspec.Raw(r["payload"]),
                attempts=r["attempts"],
            )
            for r in rows
        ]

    async def done(self, global_ids: list[int]) -> None:
        with map_db_errors():
            await self._pool.execute(sql.REACTION_DONE, global_ids)

    async def later(self, global_id: int, *, attempts: int, error: str, delay: float) -> None:
        with map_db_errors():
            await self._pool.execute(sql.REACTION_LATER, global_id, attempts, error, delay)

    async def dead(self, global_id: int, *, attempts: int, error: str) -> None:
        with map_db_errors():
            await self._pool.execute(sql.REACTION_DEAD, global_id, attempts, error)

    async def backlog(self) -> tuple[int, int]:
        """``(reactions waiting, dead letters)``."""
        with map_db_errors():
            row = await self._pool.fetchrow(sql.REACTION_BACKLOG)
        return int(row["queued"]), int(row["dead"])

    async def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        with map_db_errors():
            rows = await self._pool.fetch(sql.DEAD_LETTERS, limit)
        return [
            DeadLetter(
                global_id=r["global_id"],
                stream_id=r["stream_id"],
                seq=r["seq"],
                event=r["type"],
                attempts=r["attempts"],
                last_error=r["last_error"],
                failed_at=r["failed_at"],
            )
            for r in rows
        ]

    async def retry(self, global_ids: list[int]) -> list[int]:
        """Dead letters back to the queue, due now; the ids that moved."""
        with map_db_errors():
            rows = await self._pool.fetch(sql.DEAD_LETTER_RETRY, global_ids)
        return [r[0] for r in rows]

    async def drop(self, global_ids: list[int]) -> list[int]:
        """Dead letters forgotten (their reaction never runs); the ids that were there."""
        with map_db_errors():
            rows = await self._pool.fetch(sql.DEAD_LETTER_DROP, global_ids)
        return [r[0] for r in rows]
