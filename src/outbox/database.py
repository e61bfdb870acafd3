"""Connecting to PostgreSQL, and bringing its schema to the code's version.

A new database is created from ``schema.sql``, the readable whole. A database
that exists already gets, in order, the numbered migrations of ``migrations/``
it has not had, each recorded in ``roomcast_migrations`` with the sha256 of its
file (docs/operations.md "Schema", docs/decisions/0016-versioned-migrations.md).

Errors (all ``SchemaMismatch``; nothing is changed when one is raised):

* DatabaseNewerThanCode   the database records a migration this code does not have
* MigrationChanged        an applied migration's file is not what was applied
* MigrationsOutOfOrder    recorded or shipped versions are not 1, 2, 3, … without a gap

They are the operator's, never a client's: the process does not start.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import asyncpg
import structlog

from roomcast.outbox.errors import map_db_errors

__all__ = [
    "SCHEMA_LOCK",
    "DatabaseNewerThanCode",
    "Migrated",
    "Migration",
    "MigrationChanged",
    "MigrationsOutOfOrder",
    "SchemaMismatch",
    "check",
    "connect",
    "migrate",
    "migrations",
    "schema_sql",
]

log = structlog.get_logger("roomcast.outbox")

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

# Kept by this module, not by a migration: it must exist before the first one is
# recorded. Named for us, since `schema_migrations` is what other tools use.
_HISTORY = """
    CREATE TABLE IF NOT EXISTS roomcast_migrations (
        version    integer PRIMARY KEY CHECK (version >= 1),
        name       text NOT NULL,
        checksum   text NOT NULL,            -- sha256 of the file, hex
        applied_at timestamptz NOT NULL DEFAULT now()
    )
"""
# Another starter's migration may take longer than the session's lock and statement
# timeouts: wait for its lock without them, then run ours under them again.
_LOCK = f"""
    SET LOCAL lock_timeout = 0;
    SET LOCAL statement_timeout = 0;
    SELECT pg_advisory_xact_lock({SCHEMA_LOCK});
    SET LOCAL lock_timeout TO DEFAULT;
    SET LOCAL statement_timeout TO DEFAULT;
"""
_RECORD = "INSERT INTO roomcast_migrations (version, name, checksum) VALUES ($1, $2, $3)"
_RECORDED = "SELECT version, name, checksum FROM roomcast_migrations ORDER BY version"
_HAS_HISTORY = "SELECT to_regclass('roomcast_migrations') IS NOT NULL"
# Every version of the schema has had this table: without it the database is new.
_HAS_TABLES = "SELECT to_regclass('streams') IS NOT NULL"

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


class SchemaMismatch(Exception):
    """The database's schema cannot be brought to this code's version."""


class DatabaseNewerThanCode(SchemaMismatch):
    def __init__(self, database: int, code: int, name: str) -> None:
        super().__init__(
            f"the database is at schema version {database} ({name}), newer than this "
            f"roomcast's {code}: run a roomcast that has that migration, or restore a "
            "backup taken before it; nothing was changed"
        )
        self.database = database
        self.code = code


class MigrationChanged(SchemaMismatch):
    def __init__(self, version: int, recorded: str, shipped: str) -> None:
        super().__init__(
            f"migration {version} was applied as {recorded} but this roomcast ships it as "
            f"{shipped}: an applied migration must never change (fix forward with a new "
            "number); nothing was changed"
        )
        self.version = version


class MigrationsOutOfOrder(SchemaMismatch):
    def __init__(self, where: str, versions: list[int]) -> None:
        super().__init__(
            f"the {where} migrations are {versions}, not 1, 2, 3, … without a gap; "
            "nothing was changed"
        )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class Migrated:
    """What ``migrate`` did: from which version to which, and what ran."""

    previous: int
    """The database's version before (0: it was new)."""
    current: int
    applied: tuple[str, ...]
    """The migrations that ran (``0002_…``); empty for a new database and for a no-op."""
    created: bool
    """Created from ``schema.sql``."""


async def _reset(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset (UNLISTEN, RESET ALL, unlock all: one
    more round trip per query). Our pooled sessions never LISTEN, SET or take
    session-level locks (migrations use a transaction-level lock); an
    interrupted transaction is still rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def schema_sql() -> str:
    return resources.files("roomcast.outbox").joinpath("schema.sql").read_text("utf-8")


def _checksum(text: str) -> str:
    # Line endings normalised: a checkout with CRLF is the same migration.
    return hashlib.sha256(text.replace("\r\n", "\n").encode()).hexdigest()


@cache
def migrations() -> tuple[Migration, ...]:
    """The migrations this code ships, in version order."""
    folder = resources.files("roomcast.outbox").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match is not None:
            text = entry.read_text("utf-8")
            found.append(Migration(int(match[1]), match[2], text, _checksum(text)))
    return _in_order(found)


def _in_order(found: list[Migration] | tuple[Migration, ...]) -> tuple[Migration, ...]:
    ordered = sorted(found, key=lambda m: m.version)
    versions = [m.version for m in ordered]
    if not ordered or versions != list(range(1, len(ordered) + 1)):
        raise MigrationsOutOfOrder("shipped", versions)
    return tuple(ordered)


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


async def migrate(pool: asyncpg.Pool, *, shipped: tuple[Migration, ...] | None = None) -> Migrated:
    """Bring the database to the newest of ``shipped`` (default: ``migrations()``).

    One transaction under an advisory lock: two starters never both migrate, and
    a failing migration leaves the database as it was. Raises ``SchemaMismatch``.
    """
    known = migrations() if shipped is None else _in_order(shipped)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK)
        if not await conn.fetchval(_HAS_HISTORY):
            existing = await conn.fetchval(_HAS_TABLES)
            await conn.execute(_HISTORY)
            if not existing:
                await conn.execute(schema_sql())
                await conn.executemany(_RECORD, [(m.version, m.name, m.checksum) for m in known])
                log.info("schema_created", version=len(known))
                return Migrated(previous=0, current=len(known), applied=(), created=True)
            # The tables exist but no history: a database of the code before
            # migrations. The baseline is that code's idempotent schema.sql, so it
            # also completes a database older still, as that code's start did.
            baseline = known[0]
            await conn.execute(baseline.sql)
            await conn.execute(_RECORD, baseline.version, baseline.name, baseline.checksum)
            log.info("schema_baseline_recorded", version=baseline.version)
        recorded = await conn.fetch(_RECORDED)
        _check(recorded, known)
        previous = len(recorded)
        applied = []
        for migration in known[previous:]:
            await conn.execute(migration.sql)
            await conn.execute(_RECORD, migration.version, migration.name, migration.checksum)
            applied.append(migration.label)
        if applied:
            log.info("schema_migrated", previous=previous, current=len(known), applied=applied)
        return Migrated(
            previous=previous, current=len(known), applied=tuple(applied), created=False
        )


async def check(pool: asyncpg.Pool, *, shipped: tuple[Migration, ...] | None = None) -> int:
    """The database's schema version (0: new, 1: before migrations), changing nothing;
    ``SchemaMismatch`` if ``migrate`` would refuse it."""
    known = migrations() if shipped is None else _in_order(shipped)
    async with pool.acquire() as conn:
        if not await conn.fetchval(_HAS_HISTORY):
            return 1 if await conn.fetchval(_HAS_TABLES) else 0
        recorded = await conn.fetch(_RECORDED)
    _check(recorded, known)
    return len(recorded)


def _check(recorded: list[asyncpg.Record], known: tuple[Migration, ...]) -> None:
    """Refuse a history this code cannot continue: newer, changed, or with a gap."""
    versions = [int(r["version"]) for r in recorded]
    if versions and versions[-1] > len(known):
        newest = recorded[-1]
        raise DatabaseNewerThanCode(
            versions[-1], len(known), f"{newest['version']:04d}_{newest['name']}"
        )
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationsOutOfOrder("recorded", versions)
    for row, migration in zip(recorded, known, strict=False):
        if (row["name"], row["checksum"]) != (migration.name, migration.checksum):
            raise MigrationChanged(
                migration.version,
                f"{row['version']:04d}_{row['name']} (sha256 {row['checksum'][:12]}…)",
                f"{migration.label} (sha256 {migration.checksum[:12]}…)",
            )
