"""Versioned migrations and versioned snapshots (outbox/database.py, ADR 0016).

Every test has a database of its own. "Baseline" is a database exactly as the code
before migrations left it: schema.sql at commit c422c3e, with no `roomcast_migrations`.
That text is the baseline migration itself (0001_baseline.sql, which must never
change); its digest is pinned here, so the test still upgrades what was deployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
import pytest
from msgspec import structs

import roomcast.outbox
from roomcast.domain import room
from roomcast.domain.notifications import INBOX_STATE_VERSION, INBOXES, Notify, inbox_stream
from roomcast.domain.state import ROOM_STATE_VERSION, Room
from roomcast.outbox import codec
from roomcast.outbox.database import (
    SCHEMA_LOCK,
    DatabaseNewerThanCode,
    Migrated,
    Migration,
    MigrationChanged,
    MigrationsOutOfOrder,
    check,
    connect,
    migrate,
    migrations,
    schema_sql,
)
from roomcast.outbox.store import EventStore, Loaded, Write, append_many_statement, prepare
from roomcast.service.rooms import RoomService

from ..helpers import create_room, now, rename, unique, user
from ..serve_process import ServeProcess

MIGRATIONS = Path(roomcast.outbox.__file__).resolve().parent / "migrations"
BASELINE = (MIGRATIONS / "0001_baseline.sql").read_text("utf-8")
# sha256 of `git show c422c3e:schema.sql`, the schema before migrations.
BASELINE_SHA256 = "df01932a136c236d62f05d3187702528aaa56acf0069170a528fddb919fc1699"
LATEST = 3
UPGRADE = ("0002_snapshot_state_version", "0003_relay_batches_acked")
"""What a baseline database is migrated with, in order."""
ORG = user("org")


@contextlib.asynccontextmanager
async def _database(server_url: str, schema: str | None = None) -> AsyncIterator[str]:
    """A new, empty database on the test server (with ``schema`` run in it), dropped after."""
    name = f"roomcast_migr_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    try:
        if schema is not None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(schema)
            finally:
                await conn.close()
        yield url
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def _pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect(url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def baseline(database_url: str) -> AsyncIterator[str]:
    async with _database(database_url, BASELINE) as url:
        yield url


@pytest.fixture
async def empty(database_url: str) -> AsyncIterator[str]:
    async with _database(database_url) as url:
        yield url


async def _history(pool: asyncpg.Pool) -> list[tuple[int, str, str]]:
    rows = await pool.fetch(
        "SELECT version, name, checksum FROM roomcast_migrations ORDER BY version"
    )
    return [(r[0], r[1], r[2]) for r in rows]


def _shipped_history() -> list[tuple[int, str, str]]:
    """What the history must say, from the files themselves."""
    out = []
    for path in sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        version, _, name = path.stem.partition("_")
        out.append((int(version), name, hashlib.sha256(path.read_bytes()).hexdigest()))
    return out


# ---------------------------------------------------------------- the shipped files


def test_the_baseline_migration_is_the_schema_of_c422c3e():
    assert hashlib.sha256(BASELINE.encode()).hexdigest() == BASELINE_SHA256
    assert [m.label for m in migrations()] == [
        "0001_baseline",
        "0002_snapshot_state_version",
        "0003_relay_batches_acked",
    ]
    assert [(m.version, m.name, m.checksum) for m in migrations()] == _shipped_history()


# ---------------------------------------------------------------- upgrading


async def _baseline_room(url: str, room_id: str, renames: int) -> Room:
    """A room written as the code before migrations wrote it (its columns only), with a
    snapshot at the head whose name is wrong: if a load used it, the name would show.
    Returns the room's true state."""
    commands = [create_room(room_id, ORG), *(rename(ORG, f"name {i}") for i in range(renames))]
    state: room.State = None
    events: list[Any] = []
    for command in commands:
        for event in room.decide(command, state):
            events.append(event)
            state = room.evolve(state, event)
    assert state is not None
    empty = Loaded(stream_id=room_id, version=0, last_hash=codec.ZERO_HASH, state=None)
    p = prepare(empty, events, actor_id=ORG.id, new_event_id=uuid.uuid4)
    stale = structs.replace(state, info=structs.replace(state.info, name="stale snapshot"))
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO streams (stream_id, version, last_hash) VALUES ($1, $2, $3)",
                room_id,
                p.new_version,
                p.last_hash,
            )
            await conn.execute(
                """
                INSERT INTO events (stream_id, seq, event_id, type, data, actor_id,
                                    recorded_at, prev_hash, hash)
                SELECT $1, e.seq, e.event_id, e.type, e.data, $2, e.recorded_at, e.prev_hash,
                       e.hash
                FROM unnest($3::bigint[], $4::uuid[], $5::text[], $6::json[],
                            $7::timestamptz[], $8::bytea[], $9::bytea[])
                  AS e(seq, event_id, type, data, recorded_at, prev_hash, hash)
                """,
                room_id,
                p.actor_id,
                p.seqs,
                p.event_ids,
                p.types,
                p.datas,
                p.recorded_ats,
                p.prev_hashes,
                p.hashes,
            )
            await conn.execute(
                "INSERT INTO snapshots (stream_id, version, state) VALUES ($1, $2, $3::json)",
                room_id,
                p.new_version,
                msgspec.json.encode(stale).decode(),
            )
    finally:
        await conn.close()
    return state


async def test_migrate_upgrades_a_baseline_database_and_a_second_run_changes_nothing(baseline):
    room_id = unique("room")
    truth = await _baseline_room(baseline, room_id, renames=7)
    async with _pool(baseline) as pool:
        first = await migrate(pool)
        assert first == Migrated(previous=1, current=LATEST, applied=UPGRADE, created=False)
        history = await _history(pool)
        assert history == _shipped_history()
        stamped = await pool.fetch("SELECT * FROM roomcast_migrations ORDER BY version")
        # The snapshot from before versions existed is of version 0: no decider's.
        assert (
            await pool.fetchval("SELECT state_version FROM snapshots WHERE stream_id = $1", room_id)
            == 0
        )

        second = await migrate(pool)
        assert second == Migrated(previous=LATEST, current=LATEST, applied=(), created=False)
        assert await pool.fetch("SELECT * FROM roomcast_migrations ORDER BY version") == stamped

        # The old snapshot is ignored: the room is rebuilt from its events, right.
        loaded = await EventStore(pool, snapshot_every=5).load(room_id)
        assert loaded.version == 8
        assert loaded.state == truth
        assert loaded.state.info.name == "name 6"
        # …and snapshotted again, at the code's state version.
        row = await pool.fetchrow(
            "SELECT version, state::text AS state, state_version FROM snapshots "
            "WHERE stream_id = $1",
            room_id,
        )
        assert (row["version"], row["state_version"]) == (8, ROOM_STATE_VERSION)
        assert msgspec.json.decode(row["state"], type=Room) == truth

        # And the room takes commands on the upgraded schema.
        service = RoomService(EventStore(pool, snapshot_every=5))
        await service.execute(room_id, rename(ORG, "after the upgrade"))
        after = await EventStore(pool, snapshot_every=5).load(room_id)
        assert (after.version, after.state.info.name) == (9, "after the upgrade")


async def test_a_baseline_database_upgraded_is_the_database_schema_sql_creates(baseline, empty):
    async with _pool(baseline) as old, _pool(empty) as new:
        assert (await migrate(old)).applied == UPGRADE
        assert (await migrate(new)).created
        assert await _history(new) == await _history(old) == _shipped_history()
        upgraded, created = await _catalog(old), await _catalog(new)
        # schema.sql stays idempotent: run again on a current database it changes nothing.
        await new.execute(schema_sql())
        assert await _catalog(new) == created
    assert upgraded == created
    assert ("snapshots", "state_version", "integer", "NO", "0") in created["columns"]


async def _catalog(pool: asyncpg.Pool) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a schema defines, without the order columns were added in."""
    queries = {
        "columns": """
            SELECT table_name::text, column_name::text, data_type::text, is_nullable::text,
                   column_default::text
            FROM information_schema.columns WHERE table_schema = current_schema()""",
        "indexes": "SELECT indexname::text, indexdef FROM pg_indexes "
        "WHERE schemaname = current_schema()",
        "constraints": """
            SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid)
            FROM pg_constraint WHERE connamespace = current_schema()::regnamespace""",
        "triggers": "SELECT tgname::text, pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE NOT tgisinternal",
        "functions": """
            SELECT proname::text, pg_get_functiondef(oid) FROM pg_proc
            WHERE pronamespace = current_schema()::regnamespace""",
        "sequences": "SELECT sequence_name::text FROM information_schema.sequences "
        "WHERE sequence_schema = current_schema()",
    }
    return {
        kind: sorted(tuple(r) for r in await pool.fetch(query)) for kind, query in queries.items()
    }


async def test_a_new_database_is_created_at_the_latest_version(empty):
    async with _pool(empty) as pool:
        assert await migrate(pool) == Migrated(previous=0, current=LATEST, applied=(), created=True)
        assert await _history(pool) == _shipped_history()
        assert await migrate(pool) == Migrated(
            previous=LATEST, current=LATEST, applied=(), created=False
        )


async def test_two_starters_at_once_migrate_once(baseline):
    async with _pool(baseline) as a, _pool(baseline) as b:
        results = await asyncio.gather(migrate(a), migrate(b))
        assert sorted(r.applied for r in results) == [(), UPGRADE]
        assert await _history(a) == _shipped_history()


async def test_later_migrations_apply_in_order_and_a_failing_one_changes_nothing(empty):
    ok = Migration(LATEST + 1, "add_notes", "CREATE TABLE notes (id int PRIMARY KEY);", "c3")
    bad = Migration(LATEST + 2, "broken", "ALTER TABLE no_such_table ADD COLUMN x int;", "c4")
    async with _pool(empty) as pool:
        await migrate(pool)
        with pytest.raises(asyncpg.UndefinedTableError):
            await migrate(pool, shipped=(*migrations(), ok, bad))
        # One transaction: the good migration before the failing one is not kept either.
        assert await pool.fetchval("SELECT to_regclass('notes')") is None
        assert [v for v, _, _ in await _history(pool)] == list(range(1, LATEST + 1))

        done = await migrate(pool, shipped=(*migrations(), ok))
        assert done == Migrated(
            previous=LATEST, current=LATEST + 1, applied=(ok.label,), created=False
        )
        assert await pool.fetchval("SELECT to_regclass('notes')::text") == "notes"


async def test_a_starter_waits_out_another_ones_migration_then_runs_under_its_limits(empty):
    """The lock is waited for without the session's timeouts (a migration may take
    longer than them); the migrations themselves run under them again."""
    seen = Migration(
        LATEST + 1,
        "limits_seen",
        "CREATE TABLE limits_seen AS SELECT current_setting('lock_timeout') AS lock_timeout,"
        " current_setting('statement_timeout') AS statement_timeout;",
        "c3",
    )
    limits = {"lock_timeout": "200ms", "statement_timeout": "300ms"}
    async with _pool(empty) as pool:
        await migrate(pool)
        holder = await asyncpg.connect(empty)
        waiter = await asyncpg.create_pool(empty, min_size=1, max_size=1, server_settings=limits)
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK)
            task = asyncio.create_task(migrate(waiter, shipped=(*migrations(), seen)))
            waiting = """
                SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """
            async with asyncio.timeout(30):  # the server's lock table is all there is to watch
                while not await pool.fetchval(waiting):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            # Longer than both limits: what is tested is that the wait outlives them.
            await asyncio.sleep(1.0)
            assert not task.done()
            assert await pool.fetchval(waiting) == 1
            await holder.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK)
            assert (await task).applied == (seen.label,)
        finally:
            await holder.close()
            await waiter.close()
        row = await pool.fetchrow("SELECT * FROM limits_seen")
        assert dict(row) == limits


# ---------------------------------------------------------------- refusing


async def test_check_tells_the_version_and_changes_nothing(baseline, empty):
    future = Migration(LATEST + 1, "from_the_future", "SELECT 1;", "c3")
    async with _pool(baseline) as old, _pool(empty) as new:
        assert (await check(old), await check(new)) == (1, 0)
        assert await old.fetchval("SELECT to_regclass('roomcast_migrations')") is None
        assert await new.fetchval("SELECT to_regclass('streams')") is None
        await migrate(old)
        assert await check(old) == LATEST
        await migrate(old, shipped=(*migrations(), future))
        with pytest.raises(DatabaseNewerThanCode):
            await check(old)
        assert await check(old, shipped=(*migrations(), future)) == LATEST + 1


async def test_a_database_newer_than_the_code_is_refused_and_left_as_it_is(empty):
    future = Migration(LATEST + 1, "from_the_future", "CREATE TABLE future (id int);", "c3")
    async with _pool(empty) as pool:
        await migrate(pool, shipped=(*migrations(), future))
        before = await _history(pool)
        with pytest.raises(DatabaseNewerThanCode) as refused:
            await migrate(pool)
        assert f"schema version {LATEST + 1} ({LATEST + 1:04d}_from_the_future)" in str(
            refused.value
        )
        assert f"newer than this roomcast's {LATEST}" in str(refused.value)
        assert (refused.value.database, refused.value.code) == (LATEST + 1, LATEST)
        assert await _history(pool) == before


async def test_a_changed_migration_is_refused(empty):
    original = migrations()
    edited = Migration(2, original[1].name, original[1].sql + "\n-- edited\n", "0" * 64)
    async with _pool(empty) as pool:
        await migrate(pool)
        with pytest.raises(MigrationChanged) as refused:
            await migrate(pool, shipped=(original[0], edited, *original[2:]))
        assert refused.value.version == 2
        assert "0002_snapshot_state_version" in str(refused.value)
        assert "must never change" in str(refused.value)
        assert await _history(pool) == _shipped_history()


async def test_a_history_with_a_gap_is_refused(empty):
    async with _pool(empty) as pool:
        await migrate(pool)
        await pool.execute("DELETE FROM roomcast_migrations WHERE version = 1")
        with pytest.raises(MigrationsOutOfOrder, match=r"recorded migrations are \[2, 3\]"):
            await migrate(pool)
        with pytest.raises(MigrationsOutOfOrder, match=r"shipped migrations are \[1, 3\]"):
            await migrate(
                pool, shipped=(migrations()[0], Migration(3, "skips_two", "SELECT 1;", "c"))
            )


# ---------------------------------------------------------------- the command line


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "ROOMCAST_LOG_LEVEL": "warning"}
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "roomcast", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_roomcast_migrate_upgrades_then_is_a_no_op_then_refuses(baseline):
    looked = await asyncio.to_thread(_cli, baseline, "migrate", "--check")
    assert (looked.returncode, looked.stdout.strip()) == (
        0,
        "roomcast: schema version 1 of 3: migrate applies " + ", ".join(UPGRADE),
    ), looked.stderr
    async with _pool(baseline) as pool:
        assert await pool.fetchval("SELECT to_regclass('roomcast_migrations')") is None

    first = await asyncio.to_thread(_cli, baseline, "migrate")
    assert (first.returncode, first.stdout.strip()) == (
        0,
        "roomcast: migrated the schema from version 1 to 3 (" + ", ".join(UPGRADE) + ")",
    ), first.stderr
    second = await asyncio.to_thread(_cli, baseline, "migrate")
    assert (second.returncode, second.stdout.strip()) == (
        0,
        "roomcast: schema is up to date (version 3)",
    ), second.stderr
    looked = await asyncio.to_thread(_cli, baseline, "migrate", "--check")
    assert looked.stdout.strip() == "roomcast: schema version 3 of 3: up to date"

    async with _pool(baseline) as pool:
        await pool.execute(
            "UPDATE roomcast_migrations SET checksum = repeat('0', 64) WHERE version = 2"
        )
    changed = await asyncio.to_thread(_cli, baseline, "migrate")
    assert changed.returncode == 1
    assert changed.stderr.startswith(
        "roomcast: cannot migrate the database: migration 2 was applied as"
    )
    assert "Traceback" not in changed.stderr

    async with _pool(baseline) as pool:
        await pool.execute(
            "UPDATE roomcast_migrations SET checksum = $1 WHERE version = 2",
            migrations()[1].checksum,
        )
        await pool.execute(
            "INSERT INTO roomcast_migrations (version, name, checksum) "
            "VALUES ($1, 'from_the_future', 'c3')",
            LATEST + 1,
        )
    looked = await asyncio.to_thread(_cli, baseline, "migrate", "--check")
    assert looked.returncode == 1
    assert f"newer than this roomcast's {LATEST}" in looked.stderr
    newer = await asyncio.to_thread(_cli, baseline, "migrate")
    assert newer.returncode == 1
    assert newer.stderr.strip() == (
        f"roomcast: cannot migrate the database: the database is at schema version {LATEST + 1} "
        f"({LATEST + 1:04d}_from_the_future), newer than this roomcast's {LATEST}: run a "
        "roomcast that has that migration, or restore a backup taken before it; nothing was "
        "changed"
    )


async def test_roomcast_migrate_creates_a_new_database(empty):
    looked = await asyncio.to_thread(_cli, empty, "migrate", "--check")
    assert (looked.returncode, looked.stdout.strip()) == (
        0,
        f"roomcast: schema version 0 of {LATEST}: a new database: "
        f"migrate creates it at version {LATEST}",
    ), looked.stderr
    async with _pool(empty) as pool:
        assert await pool.fetchval("SELECT to_regclass('streams')") is None
    done = await asyncio.to_thread(_cli, empty, "migrate")
    assert (done.returncode, done.stdout.strip()) == (
        0,
        f"roomcast: created the schema at version {LATEST}",
    ), done.stderr


# ---------------------------------------------------------------- serve


async def test_serve_upgrades_a_baseline_database_at_start_up(baseline, tmp_path):
    room_id = unique("room")
    truth = await _baseline_room(baseline, room_id, renames=3)
    serve = ServeProcess(baseline, tmp_path / "serve")
    await asyncio.to_thread(serve.start)
    try:
        async with httpx.AsyncClient(base_url=serve.url, timeout=10) as client:
            answer = await client.get(
                f"/api/rooms/{room_id}",
                headers={"Authorization": f"Bearer {serve.token(ORG.id, ORG.name)}"},
            )
    finally:
        await asyncio.to_thread(serve.stop)
    assert answer.status_code == 200, answer.text
    body = answer.json()["data"]
    assert (body["version"], body["room"]["name"]) == (4, truth.info.name)
    async with _pool(baseline) as pool:
        assert await _history(pool) == _shipped_history()


async def test_serve_refuses_to_start_on_a_newer_database(empty, tmp_path):
    future = Migration(LATEST + 1, "from_the_future", "SELECT 1;", "c3")
    async with _pool(empty) as pool:
        await migrate(pool, shipped=(*migrations(), future))
    serve = ServeProcess(empty, tmp_path / "serve")
    with pytest.raises(RuntimeError, match="roomcast serve exited"):
        await asyncio.to_thread(serve.start)
    assert serve.process is not None
    assert serve.process.wait(timeout=30) == 1
    output = serve.log.read_text()
    assert output.strip() == (
        f"roomcast: cannot migrate the database: the database is at schema version {LATEST + 1} "
        f"({LATEST + 1:04d}_from_the_future), newer than this roomcast's {LATEST}: run a "
        "roomcast that has that migration, or restore a backup taken before it; nothing was "
        "changed"
    )
    async with _pool(empty) as pool:
        assert [v for v, _, _ in await _history(pool)] == list(range(1, LATEST + 2))


# ---------------------------------------------------------------- versioned snapshots


async def test_a_snapshot_of_another_state_version_is_ignored(empty):
    async with _pool(empty) as pool:
        await migrate(pool)
        store = EventStore(pool, snapshot_every=5, append_batch=1)
        service = RoomService(store)
        room_id = unique("room")
        await service.execute(room_id, create_room(room_id, ORG))
        for i in range(11):
            await service.execute(room_id, rename(ORG, f"name {i}"))
        row = await pool.fetchrow(
            "SELECT version, state_version FROM snapshots WHERE stream_id = $1", room_id
        )
        assert (row["version"], row["state_version"]) == (10, ROOM_STATE_VERSION)
        truth = (await store.load(room_id)).state
        assert truth.info.name == "name 10"

        async def tamper(state_version: int) -> None:
            stale = structs.replace(truth, info=structs.replace(truth.info, name="stale"))
            await pool.execute(
                "UPDATE snapshots SET version = 12, state = $2::json, state_version = $3 "
                "WHERE stream_id = $1",
                room_id,
                msgspec.json.encode(stale).decode(),
                state_version,
            )

        # The control: a snapshot of the code's own version is used as it stands.
        await tamper(ROOM_STATE_VERSION)
        assert (await store.load(room_id)).state.info.name == "stale"

        # Of another version (older or newer), it is not: the events decide.
        for other in (ROOM_STATE_VERSION - 1, ROOM_STATE_VERSION + 1):
            await tamper(other)
            loaded = await store.load(room_id)
            assert loaded.version == 12
            assert loaded.state == truth
            row = await pool.fetchrow(
                "SELECT version, state::text AS state, state_version FROM snapshots "
                "WHERE stream_id = $1",
                room_id,
            )
            assert (row["version"], row["state_version"]) == (12, ROOM_STATE_VERSION)
            assert msgspec.json.decode(row["state"], type=Room) == truth


async def test_appends_record_the_state_version_of_their_snapshots(empty):
    async with _pool(empty) as pool:
        await migrate(pool)
        store = EventStore(pool, snapshot_every=1, append_batch=1)
        # One append alone (sql.APPEND_NEW / APPEND_EXISTING), a room's and an inbox's.
        room_id = unique("room")
        await RoomService(store).execute(room_id, create_room(room_id, ORG))
        inbox_id = inbox_stream(ORG.id)
        notify = Notify(
            actor=ORG,
            at=now(),
            user_id=ORG.id,
            notification_id=unique("ntf"),
            type="test",
            title="t",
            message="m",
            data={},
        )
        empty_inbox = Loaded(stream_id=inbox_id, version=0, last_hash=codec.ZERO_HASH, state=None)
        await store.append(
            prepare(
                empty_inbox,
                INBOXES.decide(notify, None),
                actor_id=None,
                new_event_id=uuid.uuid4,
                decider=INBOXES,
            )
        )
        # Several rooms in one statement (group commit: sql.APPEND_MANY).
        others = [unique("room") for _ in range(2)]
        for other in others:
            await RoomService(store).execute(other, create_room(other, ORG))
        writes = []
        for other in others:
            loaded = await store.load(other)
            pending = prepare(
                loaded,
                room.decide(rename(ORG, "grouped"), loaded.state),
                actor_id=ORG.id,
                new_event_id=uuid.uuid4,
            )
            writes.append(
                Write(
                    pending=pending,
                    remember=None,
                    snapshot=msgspec.json.encode(pending.state).decode(),
                )
            )
        statement = append_many_statement(writes)
        assert len(await pool.fetch(*statement)) == 2

        rows = await pool.fetch(
            "SELECT stream_id, version, state_version FROM snapshots "
            "WHERE stream_id = ANY($1::text[]) ORDER BY stream_id",
            [room_id, inbox_id, *others],
        )
        assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
            [
                (room_id, 1, ROOM_STATE_VERSION),
                (inbox_id, 1, INBOX_STATE_VERSION),
                *((other, 2, ROOM_STATE_VERSION) for other in others),
            ]
        )
