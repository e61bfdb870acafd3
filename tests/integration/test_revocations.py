"""The revoked-token set: NOTIFY between nodes, the refresh fallback, subscribers, purge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from roomcast.outbox.revocations import Revocations, expire_revocations, revoke_token

from ..helpers import unique


def soon() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


@contextlib.asynccontextmanager
async def running(revocations: Revocations) -> AsyncIterator[Revocations]:
    task = asyncio.create_task(revocations.run())
    try:
        await asyncio.wait_for(revocations.loaded.wait(), 10)
        yield revocations
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def other_pool(own_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(own_database_url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_revocation_on_one_node_reaches_the_other_and_its_subscribers(
    pool, other_pool, own_database_url
):
    here = Revocations(pool, own_database_url, refresh_every=3600)
    there = Revocations(other_pool, own_database_url, refresh_every=3600)
    heard: asyncio.Queue[str] = asyncio.Queue()
    jti = unique("jti with spaces")
    async with running(there):
        there.subscribe(heard.put_nowait)
        await here.revoke(jti, expires_at=soon(), revoked_by="usr_admin")
        assert here.is_revoked(jti)  # at once, on the revoking node
        assert await asyncio.wait_for(heard.get(), 10) == jti  # by NOTIFY, not the refresh
        assert there.is_revoked(jti)
        assert heard.empty()  # told once


async def test_the_periodic_refresh_finds_what_no_notification_announced(
    pool, other_pool, own_database_url
):
    node = Revocations(other_pool, own_database_url, refresh_every=0.05)
    heard: asyncio.Queue[str] = asyncio.Queue()
    jti = unique("jti")
    async with running(node):
        node.subscribe(heard.put_nowait)  # after the first load: only what is new
        # Written behind the nodes' backs: no NOTIFY at all.
        await pool.execute(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2)", jti, soon()
        )
        assert await asyncio.wait_for(heard.get(), 10) == jti
    assert node.is_revoked(jti)


async def test_a_node_starting_later_loads_earlier_revocations(pool, own_database_url):
    jti = unique("jti")
    await revoke_token(pool, jti, expires_at=soon(), revoked_by=None)
    late = Revocations(pool, own_database_url)
    assert not late.is_revoked(jti)
    await late.refresh()
    assert late.is_revoked(jti)


async def test_rows_of_expired_tokens_are_purged_and_leave_memory(pool, own_database_url):
    old, fresh = unique("old"), unique("fresh")
    node = Revocations(pool, own_database_url)
    await node.revoke(old, expires_at=datetime.now(UTC) - timedelta(hours=1), revoked_by=None)
    await node.revoke(fresh, expires_at=soon(), revoked_by=None)
    assert node.is_revoked(old)  # in memory until the next refresh

    assert await expire_revocations(pool) >= 1
    await node.refresh()

    left = {r["jti"] for r in await pool.fetch("SELECT jti FROM revoked_tokens")}
    assert old not in left
    assert fresh in left
    assert not node.is_revoked(old)
    assert node.is_revoked(fresh)


async def test_revoking_again_keeps_the_later_expiry(pool):
    jti = unique("jti")
    later = soon() + timedelta(days=1)
    await revoke_token(pool, jti, expires_at=later, revoked_by=None)
    await revoke_token(pool, jti, expires_at=soon(), revoked_by=None)
    stored = await pool.fetchval("SELECT expires_at FROM revoked_tokens WHERE jti = $1", jti)
    assert stored == later
