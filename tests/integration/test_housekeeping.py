"""Idempotency keys expire after their TTL; fresh ones stay."""

from __future__ import annotations

import asyncpg

from roomcast.outbox.housekeeping import expire_idempotency_keys

from ..helpers import unique


async def _key(pool: asyncpg.Pool, age_seconds: int) -> str:
    key = unique("key")
    await pool.execute(
        """INSERT INTO idempotency_keys (principal, key, fingerprint, stream_id, result, created_at)
           VALUES ('usr_x', $1, '\\x00', 'room_x', '{}', now() - make_interval(secs => $2))""",
        key,
        float(age_seconds),
    )
    return key


async def test_keys_older_than_the_ttl_are_deleted_in_batches(pool):
    old = [await _key(pool, 7200) for _ in range(5)]
    fresh = await _key(pool, 10)

    removed = await expire_idempotency_keys(pool, ttl_seconds=3600, batch=2)

    left = {r["key"] for r in await pool.fetch("SELECT key FROM idempotency_keys")}
    assert removed == 5
    assert fresh in left
    assert not left & set(old)
