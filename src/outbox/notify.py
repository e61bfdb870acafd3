"""After-commit wake-ups for the relay: in-process at once, other processes by NOTIFY.

The NOTIFY is sent after the append has committed, in its own statement, and
coalesced: however many commits happen while one NOTIFY is in flight, one more
follows. It is only a wake-up; the relay polls anyway, so a lost one delays
delivery by at most the poll interval and loses nothing.

While this process's own relay is the active publisher, the relays of other
processes are standbys with nothing to publish, and the NOTIFY only wakes
observers (``roomcast audit follow``): it then goes out at most once per
``observer_interval``. Under load that is one statement every 50 ms instead of
one per commit (a pool round trip that cost ~3 % of a command's CPU at P1's
concurrency 32, bench/README.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import structlog

from roomcast.outbox import sql

__all__ = ["CommitSignal"]

log = structlog.get_logger("roomcast.relay")


def _never() -> bool:
    return False


class CommitSignal:
    def __init__(self, pool: asyncpg.Pool, *, observer_interval: float = 0.05) -> None:
        self._pool = pool
        self._local: Callable[[], None] | None = None
        self._local_active: Callable[[], bool] = _never
        self._observer_interval = observer_interval
        self._wanted = False
        self._last_sent = -float("inf")
        self._task: asyncio.Task[None] | None = None

    def wake_locally(
        self, local: Callable[[], None], *, active: Callable[[], bool] = _never
    ) -> None:
        """Also call ``local`` on every commit (this process's relay, once it exists);
        ``active``: whether that relay is the publisher now (it holds the lock)."""
        self._local = local
        self._local_active = active

    def __call__(self) -> None:
        if self._local is not None:
            self._local()
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._notify())

    async def _notify(self) -> None:
        while self._wanted:
            if self._local_active():
                # Only observers listen: the commits of the next moments share one.
                wait = self._last_sent + self._observer_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._wanted = False
            self._last_sent = time.monotonic()
            try:
                await self._pool.execute("SELECT pg_notify($1, '')", sql.NOTIFY_CHANNEL)
            except Exception as exc:
                # Whatever the driver raises (a cut connection surfaces as
                # InternalClientError too): nobody awaits this task, so an escaping
                # exception would only be "never retrieved". The relay's poll covers it.
                log.warning("relay_notify_failed", error=repr(exc))
                return

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
