"""After-commit wake-ups for the relay: in-process at once, other processes by NOTIFY.

The NOTIFY is sent after the append has committed, in its own statement, and
coalesced: however many commits happen while one NOTIFY is in flight, one more
follows. It is only a wake-up; the relay polls anyway, so a lost one delays
delivery by at most the poll interval and loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

from roomcast.outbox import sql

__all__ = ["CommitSignal"]

log = structlog.get_logger("roomcast.relay")


class CommitSignal:
    def __init__(self, pool: asyncpg.Pool, *, local: Callable[[], None] | None = None) -> None:
        self._pool = pool
        self._local = local
        self._wanted = False
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> None:
        if self._local is not None:
            self._local()
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._notify())

    async def _notify(self) -> None:
        while self._wanted:
            self._wanted = False
            try:
                await self._pool.execute("SELECT pg_notify($1, '')", sql.NOTIFY_CHANNEL)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("relay_notify_failed", error=str(exc))  # the poll covers it
                return

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
