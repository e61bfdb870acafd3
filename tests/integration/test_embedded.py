"""The embedded PostgreSQL lifecycle, against real servers: start, share, crash, stop."""

from __future__ import annotations

import asyncio
import pathlib
import signal
import sys

import asyncpg
import pytest

from roomcast.outbox.embedded import EmbeddedPostgres, EmbeddedPostgresError

from ..helpers import process_alive

pytestmark = pytest.mark.integration

# A holder in another process: starts the server on argv[1], says so, then waits
# for its stdin to close and exits normally (without calling stop()).
_CHILD_HOLDER = """
import pathlib, sys
from roomcast.outbox.embedded import EmbeddedPostgres
EmbeddedPostgres(pathlib.Path(sys.argv[1])).start()
print("started", flush=True)
sys.stdin.read()
"""

_CRASHING_HOLDER = """
import os, pathlib, signal, sys
from roomcast.outbox.embedded import EmbeddedPostgres
EmbeddedPostgres(pathlib.Path(sys.argv[1])).start()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _postmaster_pid(data_dir: pathlib.Path) -> int:
    return int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])


async def _select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def test_start_serves_sql_and_notify_and_stop_shuts_it_down(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "data"
    pg = EmbeddedPostgres(data)
    dsn = pg.start()
    assert pg.dsn == dsn
    postmaster = _postmaster_pid(data)
    try:
        listener = await asyncpg.connect(dsn, timeout=10)
        try:
            assert "PostgreSQL" in await listener.fetchval("SELECT version()")
            payloads: asyncio.Queue[str] = asyncio.Queue()
            await listener.add_listener(
                "embedded_test", lambda _conn, _pid, _channel, payload: payloads.put_nowait(payload)
            )
            notifier = await asyncpg.connect(dsn, timeout=10)
            try:
                await notifier.execute("SELECT pg_notify('embedded_test', 'hello')")
            finally:
                await notifier.close()
            assert await asyncio.wait_for(payloads.get(), timeout=5) == "hello"
        finally:
            await listener.close()
    finally:
        pg.stop()

    assert not process_alive(postmaster)
    # pg_ctl stop removes the socket file (ConnectionRefusedError if it lingered).
    with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
        await asyncpg.connect(dsn, timeout=5)
    with pytest.raises(RuntimeError):
        _ = pg.dsn


async def test_adopts_and_stops_the_server_of_a_crashed_owner(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "data"
    crashed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASHING_HOLDER, str(data), stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(crashed.communicate(), timeout=60)
    assert crashed.returncode == -signal.SIGKILL, stderr.decode()
    orphan = _postmaster_pid(data)
    assert process_alive(orphan), "the crash should have left the server running"

    pg = EmbeddedPostgres(data)
    dsn = pg.start()
    assert _postmaster_pid(data) == orphan  # attached, not restarted
    assert await _select_one(dsn) == 1
    pg.stop()

    assert not process_alive(orphan)


async def test_two_holders_in_one_process_last_one_out_stops(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "data"
    a, b = EmbeddedPostgres(data), EmbeddedPostgres(data)
    dsn = a.start()
    assert b.start() == dsn
    postmaster = _postmaster_pid(data)

    a.stop()
    assert process_alive(postmaster)
    assert await _select_one(b.dsn) == 1

    b.stop()
    assert not process_alive(postmaster)

    # The process can start it again afterwards (nothing stale is cached).
    with EmbeddedPostgres(data) as again:
        assert await _select_one(again.dsn) == 1
        assert _postmaster_pid(data) != postmaster


async def test_a_live_holder_in_another_process_keeps_it_running(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "data"
    pg = EmbeddedPostgres(data)
    pg.start()
    postmaster = _postmaster_pid(data)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD_HOLDER,
        str(data),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), timeout=60) == b"started\n"

        pg.stop()
        assert process_alive(postmaster)

        # The child, now the last holder, stops the server on a normal exit.
        child.stdin.close()
        assert await asyncio.wait_for(child.wait(), timeout=60) == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert not process_alive(postmaster)


def test_stop_is_idempotent_and_safe_before_start(tmp_path: pathlib.Path) -> None:
    never_started = EmbeddedPostgres(tmp_path / "unused")
    never_started.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = never_started.dsn
    assert not (tmp_path / "unused").exists()

    pg = EmbeddedPostgres(tmp_path / "data")
    pg.start()
    pg.stop()
    pg.stop()


def test_a_file_in_place_of_the_data_dir_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    with pytest.raises(EmbeddedPostgresError) as caught:
        EmbeddedPostgres(tmp_path / "data").start()
    message = str(caught.value)
    assert str(tmp_path / "data") in message
    assert "\n" not in message


def test_a_cluster_of_another_major_version_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    pgdata = tmp_path / "data" / "pg"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("16\n")
    with pytest.raises(EmbeddedPostgresError, match="PostgreSQL 16 cluster") as caught:
        EmbeddedPostgres(tmp_path / "data").start()
    assert "\n" not in str(caught.value)
