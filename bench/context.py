"""What every scenario shares: PostgreSQL, the app, the bare server, client workers, data.

``Bench`` is an async context manager; leaving it (normally, on an error or on
Ctrl-C) stops the client workers, both servers and the embedded PostgreSQL, and
drops the databases it created.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from bench import nodepeer
from bench.httpc import Http
from bench.nodepeer import NodePeer
from bench.plan import Plan
from bench.procs import ROOT, Processes, Server, Workers, free_port
from roomcast.domain import room as decider
from roomcast.domain.commands import CreateRoom, UpdateRoom
from roomcast.domain.state import UserRef
from roomcast.ids import uuid7
from roomcast.outbox import codec, sql
from roomcast.outbox.database import connect, migrate
from roomcast.outbox.embedded import EmbeddedPostgres
from roomcast.outbox.store import EventStore, Loaded, PendingAppend, append_statement, prepare
from roomcast.tokens import mint

__all__ = ["DATA_DIR", "ORG", "SECRET", "Bench"]

DATA_DIR = ROOT / "bench" / ".data"
SECRET = "bench-secret-not-for-production-0123456789abcdef"
ORG = UserRef(id="usr_bench_organizer", name="Bench Organizer")
SNAPSHOT_EVERY = 100  # the app's default ROOMCAST_SNAPSHOT_EVERY
_names = itertools.count()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def snapshot_for(pending: PendingAppend) -> str | None:
    """What ``EventStore.append`` adds to the statement: a snapshot every 100 events."""
    if pending.new_version // SNAPSHOT_EVERY > pending.expected_version // SNAPSHOT_EVERY:
        return msgspec.json.encode(pending.state).decode()
    return None


def update_events(loaded: Loaded[Any], count: int, prefix: str = "bench") -> list[Any]:
    """``count`` room:updated events on top of ``loaded`` (renames, decided by the domain)."""
    state = loaded.state
    events: list[Any] = []
    for _ in range(count):
        # A new name every time: renaming to the current name decides no event.
        command = UpdateRoom(actor=ORG, at=datetime.now(UTC), name=f"{prefix} {next(_names)}")
        decided = decider.decide(command, state)
        events.extend(decided)
        for event in decided:
            state = decider.evolve(state, event)
    return events


def after(pending: PendingAppend) -> Loaded[Any]:
    return Loaded(
        stream_id=pending.stream_id,
        version=pending.new_version,
        last_hash=pending.last_hash,
        state=pending.state,
    )


class Streams:
    """Direct access to a database's streams: bulk writes and the raw baselines' statements."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.store = EventStore(pool, snapshot_every=SNAPSHOT_EVERY)

    async def create_room(self, name: str = "Bench room") -> Loaded[Any]:
        room_id = f"room_{uuid.uuid4().hex[:16]}"
        command = CreateRoom(actor=ORG, at=datetime.now(UTC), room_id=room_id, name=name)
        empty = Loaded(stream_id=room_id, version=0, last_hash=codec.ZERO_HASH, state=None)
        pending = prepare(empty, decider.decide(command, None), actor_id=ORG.id, new_event_id=uuid7)
        await self.store.append(pending)
        return after(pending)

    def prepare_updates(
        self, loaded: Loaded[Any], count: int, chunk: int = 1000
    ) -> list[PendingAppend]:
        """``count`` events as appends of up to ``chunk`` events each, chained on ``loaded``."""
        out = []
        while count > 0:
            take = min(chunk, count)
            pending = prepare(
                loaded, update_events(loaded, take), actor_id=ORG.id, new_event_id=uuid7
            )
            out.append(pending)
            loaded = after(pending)
            count -= take
        return out

    def statements(self, loaded: Loaded[Any], count: int) -> list[tuple[object, ...]]:
        """One single-event append statement per command, exactly as the store builds them."""
        out = []
        for pending in self.prepare_updates(loaded, count, chunk=1):
            out.append(append_statement(pending, None, snapshot_for(pending)))
        return out

    async def append_all(self, pendings: list[PendingAppend]) -> int:
        version = 0
        for pending in pendings:
            version = (await self.store.append(pending)).version
        return version

    async def grow(self, room_id: str, count: int) -> int:
        """Append ``count`` renames to ``room_id`` in bulk; the new head."""
        loaded = await self.store.load(room_id)
        return await self.append_all(self.prepare_updates(loaded, count))

    async def notify(self) -> None:
        await self.pool.execute("SELECT pg_notify($1, '')", sql.NOTIFY_CHANNEL)


def _other_holders(pgdata: Path) -> bool:
    """Whether another live process holds the embedded server (another harness, say)."""
    try:
        pids = msgspec.json.decode((pgdata / ".handle_pids.json").read_bytes())
    except (OSError, msgspec.DecodeError):
        return True
    return any(pid != os.getpid() and Path(f"/proc/{pid}").exists() for pid in pids)


class Bench:
    def __init__(self, plan: Plan, *, log_level: str = "info") -> None:
        self.plan = plan
        self.log_level = log_level
        self.log_dir = DATA_DIR / "logs"
        self.procs = Processes(self.log_dir)
        self.embedded: EmbeddedPostgres | None = None
        self.admin_dsn = ""
        self.app_dsn = ""
        self.raw_dsn = ""
        self.databases: list[str] = []
        self.app: Server
        self.bare: Server
        self.ceiling: Server
        """P1 only: bench/ceiling.py, started and stopped by the scenario."""
        self.node_peer = NodePeer(False, "Node.js peer not prepared")
        self.node: Server | None = None
        """The Node.js socket.io peer (plain mode), when Node.js and npm are there."""
        self.workers: Workers
        self.pool: asyncpg.Pool  # the app's database
        self.raw_pool: asyncpg.Pool  # the raw baselines' database
        self.streams: Streams
        self.raw: Streams
        self.template = ""
        self.postgres_version = ""
        self.commit_timestamps = False
        """Whether PostgreSQL records commit times (``pg_xact_commit_timestamp``)."""
        self.results: dict[str, Any] = {}
        self._closers = contextlib.AsyncExitStack()

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Bench:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for old in self.log_dir.glob("*.log"):
            old.unlink()
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _open(self) -> None:
        stack = self._closers
        stack.push_async_callback(self.procs.close)
        url = os.environ.get("DATABASE_URL")
        if url:
            self.admin_dsn = url
            log("PostgreSQL: DATABASE_URL")
        else:
            self.embedded = EmbeddedPostgres(DATA_DIR)
            self.admin_dsn = await asyncio.to_thread(self.embedded.start)
            try:
                await self._track_commit_timestamps()
            finally:
                stack.push_async_callback(asyncio.to_thread, self.embedded.stop)
            log(f"PostgreSQL: embedded in {self.embedded.pgdata}")
            await self._drop_leftovers()
        self.commit_timestamps = await self._show_commit_timestamps()
        if not self.commit_timestamps:
            log(
                "NOTE: track_commit_timestamp is off on DATABASE_URL's server: P2's "
                "commit → client starts at the command's HTTP answer instead of the commit"
            )
        stack.push_async_callback(self._drop_databases)
        tag = uuid.uuid4().hex[:8]
        self.app_dsn = await self._create_database(f"bench_app_{tag}")
        self.raw_dsn = await self._create_database(f"bench_raw_{tag}")
        self.pool = await connect(self.app_dsn, max_size=self.plan.pool_size)
        stack.push_async_callback(self.pool.close)
        self.raw_pool = await connect(self.raw_dsn, max_size=self.plan.pool_size)
        stack.push_async_callback(self.raw_pool.close)
        self.postgres_version = str(await self.pool.fetchval("SHOW server_version"))
        self.streams = Streams(self.pool)
        self.raw = Streams(self.raw_pool)
        loaded = await self.raw.create_room("Template")
        self.template = msgspec.json.encode(update_events(loaded, 1, "name")[0]).decode()
        self.app = await self.start_app("app")
        self.bare = await self.start_bare("bare")
        self.node_peer = await nodepeer.prepare()
        if self.node_peer.available:
            try:
                self.node = await self.start_node("node")
            except RuntimeError as exc:
                self.node_peer.available = False
                self.node_peer.note = f"Node.js peer skipped: it did not start: {exc}"[:600]
        if self.node is not None:
            log(
                f"Node.js peer on {self.node.url} (node {self.node_peer.node_version}, "
                f"socket.io {self.node_peer.packages.get('socket.io', '?')})"
            )
        else:
            log(f"NOTE: {self.node_peer.note}")
        self.workers = await Workers.start(self.procs, self.plan.workers)
        stack.push_async_callback(self.workers.quit)
        log(f"app on {self.app.url} (pid {self.app.pid}), bare on {self.bare.url}")

    async def close(self) -> None:
        await self._closers.aclose()

    async def _show_commit_timestamps(self) -> bool:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            return bool(await conn.fetchval("SHOW track_commit_timestamp") == "on")
        finally:
            await conn.close()

    async def _track_commit_timestamps(self) -> None:
        """Turn on ``track_commit_timestamp`` in the embedded server (a restart, once:
        ALTER SYSTEM keeps it): P2 reads each event's commit time from PostgreSQL."""
        assert self.embedded is not None
        if await self._show_commit_timestamps() or _other_holders(self.embedded.pgdata):
            return
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
        finally:
            await conn.close()
        await asyncio.to_thread(self.embedded.stop)
        self.embedded = EmbeddedPostgres(DATA_DIR)
        self.admin_dsn = await asyncio.to_thread(self.embedded.start)
        log("PostgreSQL: track_commit_timestamp turned on (restarted once)")

    async def _drop_leftovers(self) -> None:
        """Databases of earlier runs that died, when no other harness shares this server."""
        assert self.embedded is not None
        if _other_holders(self.embedded.pgdata):
            return
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            names = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'bench_%'")
            for row in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        finally:
            await conn.close()

    async def _create_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.databases.append(name)
        dsn = with_database(self.admin_dsn, name)
        pool = await connect(dsn, min_size=1, max_size=1)
        try:
            await migrate(pool)
        finally:
            await pool.close()
        return dsn

    async def _drop_databases(self) -> None:
        if not self.databases:
            return
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            for name in self.databases:
                with contextlib.suppress(asyncpg.PostgresError):
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    # ------------------------------------------------------------ servers

    async def start_app(
        self, name: str, settings: dict[str, str] | None = None, command: list[str] | None = None
    ) -> Server:
        """``roomcast serve`` on a free port of 127.0.0.1, on the app database, relay inside;
        ``settings``: more ``ROOMCAST_*`` variables for this one (``DATABASE_URL`` too);
        ``command``: another way to run it (bench/variant.py)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMCAST_", "REDIS_"))}
        port = free_port()
        env |= {
            "DATABASE_URL": self.app_dsn,
            "ROOMCAST_JWT_SECRET": SECRET,
            "ROOMCAST_HOST": "127.0.0.1",
            "ROOMCAST_PORT": str(port),
            "ROOMCAST_LOG_LEVEL": self.log_level,
            "ROOMCAST_LOG_FORMAT": "json",
            "ROOMCAST_DATA_DIR": str(DATA_DIR / "server"),
            "ROOMCAST_DB_POOL_SIZE": str(self.plan.pool_size),
            # Load generators send far more than a person would as one user: the
            # per-user REST limit would measure itself, not the write path.
            "ROOMCAST_REST_RATE_LIMIT": "0",
            # Likewise the per-user connection limit: a thousand sockets of one test user
            # stand for a thousand people.
            "ROOMCAST_MAX_CONNECTIONS_PER_USER": "1000000",
        }
        # Connection state recovery on (the default) or off, for a run comparing the two.
        if "ROOMCAST_RECOVERY" in os.environ:
            env["ROOMCAST_RECOVERY"] = os.environ["ROOMCAST_RECOVERY"]
        env |= settings or {}
        return await Server.start(
            self.procs,
            name,
            command or [sys.executable, "-m", "roomcast", "serve"],
            env=env,
            ready_path="/health",
            port=port,
        )

    async def start_bare(self, name: str) -> Server:
        return await self._start_module(name, "bench.bare")

    async def start_node(self, name: str, mode: str = "plain") -> Server:
        """The Node.js peer, ``mode`` "plain" (the seeds' server) or "recovery" (its
        connection state recovery on); only when ``node_peer.available``."""
        if not self.node_peer.available:
            raise RuntimeError(self.node_peer.note)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
        env["ROOMCAST_JWT_SECRET"] = SECRET
        env["NODE_ENV"] = "production"
        return await Server.start(
            self.procs,
            name,
            [
                self.node_peer.node,
                str(nodepeer.SERVER),
                "--port",
                str(port),
                "--mode",
                mode,
            ],
            env=env,
            ready_path="/ready",
            port=port,
        )

    async def start_ceiling(self, name: str) -> Server:
        return await self._start_module(name, "bench.ceiling")

    async def _start_module(self, name: str, module: str) -> Server:
        """A baseline server of bench's own: ``python -m <module> --port N``, ready at /ready."""
        port = free_port()
        return await Server.start(
            self.procs,
            name,
            [sys.executable, "-m", module, "--port", str(port)],
            env=dict(os.environ),
            ready_path="/ready",
            port=port,
        )

    async def stop(self, server: Server) -> None:
        await self.procs.stop(server.proc)

    # ------------------------------------------------------------ helpers

    def token(self, sub: str = ORG.id) -> str:
        return mint(
            secret=SECRET,
            sub=sub,
            name=ORG.name if sub == ORG.id else sub,
            issuer="roomcast",
            audience="roomcast",
            ttl_seconds=24 * 3600,
        )

    def http(self, server: Server | None = None) -> Http:
        return Http((server or self.app).port, self.token())

    async def create_room(self, http: Http | None = None, name: str = "Bench room") -> str:
        """A room created through the REST API by the organizer all clients log in as."""
        own = http is None
        http = http or self.http()
        try:
            answer = await http.json("POST", "/api/rooms", {"name": name}, expect=201)
        finally:
            if own:
                await http.close()
        return str(answer["data"]["room"]["id"])

    async def outbox_drained(self, within: float = 120) -> None:
        """Until the app's relay has published everything (so it does not compete)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await self.pool.fetchval("SELECT NOT EXISTS (SELECT 1 FROM outbox)"):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the relay did not drain the outbox in {within:g} s")

    async def emit_bare(
        self, count: int, rate: float, server: Server | None = None
    ) -> dict[str, Any]:
        """``count`` events emitted by the bare server (or the Node peer, ``server``):
        ``t_start``, ``t_end``, ``head``, ``first_seq`` and per event the offset of its
        emit from its payload's ``timestamp`` (s)."""
        async with Http((server or self.bare).port) as http:
            result: dict[str, Any] = await http.json(
                "POST", "/emit", {"count": count, "rate": rate, "template": self.template}
            )
        return result

    async def bare_history(self, count: int, server: Server | None = None) -> int:
        async with Http((server or self.bare).port) as http:
            result = await http.json(
                "POST", "/history", {"count": count, "template": self.template}
            )
        return int(result["head"])
