"""Connecting to PostgreSQL and applying ``schema.sql``."""

from __future__ import annotations

from importlib import resources

import asyncpg

from roomcast.outbox.errors import map_db_errors

__all__ = ["SCHEMA_LOCK", "connect", "migrate", "schema_sql"]

SCHEMA_LOCK = 0x726F6F6D63617374  # "roomcast": serialises concurrent migrations

# Session settings for every connection of our pool: none of our sessions may
# sit in an open transaction (holding a room's head row lock) after its client
# went away, nor run a statement for long. Other clients of the same database
# are not covered by these; see docs/operations.md.
_SERVER_SETTINGS = {
    "idle_in_transaction_session_timeout": "5000",
    "statement_timeout": "15000",
    "lock_timeout": "10000",
    "application_name": "roomcast",
}


async def _reset(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset (UNLISTEN, RESET ALL, unlock all: one
    more round trip per query). Our pooled sessions never LISTEN, SET or take
    session-level locks (migrations use a transaction-level lock); an
    interrupted transaction is still rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def schema_sql() -> str:
    return resources.files("roomcast.outbox").joinpath("schema.sql").read_text("utf-8")


async def connect(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool to ``dsn``; ``ServiceUnavailable`` if the server cannot be reached."""
    with map_db_errors():
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min(min_size, max_size),
            max_size=max_size,
            server_settings=_SERVER_SETTINGS,
            command_timeout=30,
            reset=_reset,
        )
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool) -> None:
    """Apply ``schema.sql`` (idempotent). An advisory lock keeps two starters apart."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        await conn.execute(schema_sql())
