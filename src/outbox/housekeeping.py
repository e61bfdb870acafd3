"""Periodic clean-up of what is only kept for a while: idempotency keys, revocations,
refresh tokens.

Events are never deleted. An idempotency key only has to outlive a client's
retries, so keys older than the TTL are removed. A revoked token's row only has
to outlive the token (``revocations.expire_revocations``). Every node may run this: the
DELETE is idempotent and batched, so nodes running it together only share work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import structlog

from roomcast.outbox.errors import map_db_errors
from roomcast.outbox.recovery_log import RecoveryLog
from roomcast.outbox.refresh_tokens import expire_refresh_tokens
from roomcast.outbox.revocations import expire_revocations

__all__ = ["expire_idempotency_keys", "housekeeping"]

log = structlog.get_logger("roomcast.housekeeping")

_EXPIRE = """
    DELETE FROM idempotency_keys
    WHERE ctid IN (
        SELECT ctid FROM idempotency_keys
        WHERE created_at < now() - make_interval(secs => $1)
        LIMIT $2
    )
"""


async def expire_idempotency_keys(pool: asyncpg.Pool, ttl_seconds: float, batch: int = 5000) -> int:
    """Delete keys older than ``ttl_seconds``, a batch at a time; returns how many."""
    removed = 0
    while True:
        with map_db_errors():
            status = await pool.execute(_EXPIRE, float(ttl_seconds), batch)
        count = int(status.split()[-1])
        removed += count
        if count < batch:
            return removed


@contextlib.asynccontextmanager
async def housekeeping(
    pool: asyncpg.Pool, *, ttl_seconds: float, every_seconds: float = 600
) -> AsyncIterator[None]:
    """Run the clean-up now and every ``every_seconds`` while the context is open."""

    async def loop() -> None:
        while True:
            try:
                removed = await expire_idempotency_keys(pool, ttl_seconds)
                if removed:
                    log.info("idempotency_keys_expired", removed=removed)
                revocations = await expire_revocations(pool)
                if revocations:
                    log.info("revocations_expired", removed=revocations)
                sessions, batches = await RecoveryLog(pool).expire()
                if sessions or batches:
                    log.info("recovery_expired", sessions=sessions, batches=batches)
                refresh_tokens = await expire_refresh_tokens(pool)
                if refresh_tokens:
                    log.info("refresh_tokens_expired", removed=refresh_tokens)
            except Exception as exc:  # a clean-up must never take the service down
                log.warning("housekeeping_failed", error=repr(exc))
            await asyncio.sleep(every_seconds)

    task = asyncio.create_task(loop(), name="housekeeping")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
