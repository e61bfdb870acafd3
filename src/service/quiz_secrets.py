"""The secret answer of each quiz question (``quiz_secrets``): written before the
question is published, read to judge answers and to close, marked when closed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from roomcast.outbox.errors import map_db_errors

__all__ = ["QuizSecrets", "Secret"]

_PUT = """
    INSERT INTO quiz_secrets (question_id, stream_id, answer, salt, closes_at)
    VALUES ($1, $2, $3, $4, $5)
"""
_GET = "SELECT stream_id, answer, salt FROM quiz_secrets WHERE question_id = $1"
_DUE = """
    SELECT question_id, stream_id, answer, salt FROM quiz_secrets
    WHERE NOT closed AND closes_at <= $1 ORDER BY closes_at LIMIT $2
"""
_NEXT = "SELECT min(closes_at) FROM quiz_secrets WHERE NOT closed"
_MARK_CLOSED = "UPDATE quiz_secrets SET closed = true WHERE question_id = $1"


@dataclass(frozen=True, slots=True)
class Secret:
    question_id: str
    room_id: str
    answer: str
    salt: bytes


class QuizSecrets:
    """asyncpg adapter. Does not own the pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def put(self, secret: Secret, closes_at: datetime) -> None:
        with map_db_errors():
            await self._pool.execute(
                _PUT, secret.question_id, secret.room_id, secret.answer, secret.salt, closes_at
            )

    async def get(self, question_id: str) -> Secret | None:
        with map_db_errors():
            row = await self._pool.fetchrow(_GET, question_id)
        if row is None:
            return None
        return Secret(question_id, row["stream_id"], row["answer"], bytes(row["salt"]))

    async def due(self, now: datetime, limit: int = 100) -> list[Secret]:
        """Open questions whose time limit has passed, oldest deadline first."""
        with map_db_errors():
            rows = await self._pool.fetch(_DUE, now, limit)
        return [
            Secret(r["question_id"], r["stream_id"], r["answer"], bytes(r["salt"])) for r in rows
        ]

    async def next_deadline(self) -> datetime | None:
        with map_db_errors():
            value: datetime | None = await self._pool.fetchval(_NEXT)
        return value

    async def mark_closed(self, question_id: str) -> None:
        with map_db_errors():
            await self._pool.execute(_MARK_CLOSED, question_id)
