"""N4 the REST per-user limit through Redis: what the cluster-wide check costs a command.

A node with ``REDIS_URL`` counts every REST request of a user in Redis (one Lua
sliding log per user, service/redis_ratelimit.py, ADR 0020), so that N nodes
admit a user's limit once, not N times. The price is a Redis round trip per
request. Four ``roomcast serve`` nodes, each on a database of its own (a node's
relay publishes its own rooms only), take turns with P1's renames:

* **in Redis**: ``REDIS_URL`` set, ``ROOMCAST_REST_RATE_LIMIT`` high enough never
  to refuse, against the same node with the limit off (``REDIS_URL`` still set, so
  both publish their broadcasts through Redis: the difference is the check alone);
* **in memory**: no Redis, the same limit, against the limit off.

Figures, limit on ÷ off, in the same repeat, in alternating order: commands/s at
concurrency ``n4_concurrency``, and the command latency p50 at concurrency 1
(where a round trip shows undiluted).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass

import asyncpg

from bench.context import Bench, log
from bench.procs import Server, Workers
from bench.scenarios.common import renames
from bench.scenarios.ncluster import drained, start_redis
from bench.stats import Scenario, percentile
from roomcast.outbox.database import connect

NEVER = str(10**9)
"""Requests per user per minute: on, and never reached by the bench's one user."""


@dataclass
class _Node:
    name: str
    server: Server
    pool: asyncpg.Pool


async def _round(b: Bench, server: Server, concurrency: int, total: int) -> tuple[float, float]:
    """Renames at ``concurrency`` (a room per connection): commands/s and latency p50 (ms)."""
    shares = Workers.split(total, concurrency)
    https = [b.http(server) for _ in range(concurrency)]
    latencies: list[float] = []
    try:
        rooms = [await b.create_room(h) for h in https]
        for http in https:  # idle since its create: past the keep-alive timeout, maybe
            await http.close()

        def run(i: int, count: int, timed: bool) -> Awaitable[None]:
            return renames(https[i], f"/api/rooms/{rooms[i]}", count, latencies if timed else None)

        await asyncio.gather(*(run(i, 5, False) for i in range(concurrency)))  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(run(i, shares[i], True) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        for http in https:
            await http.close()
    return total / elapsed, percentile(latencies, 50) * 1000


async def run(b: Bench) -> Scenario:
    plan = b.plan
    s = Scenario("N4", "The REST per-user limit through Redis vs in memory vs off")
    s.note = (
        f"four `roomcast serve` nodes, a database each; limit {NEVER}/min (never refuses); "
        "'in Redis' pairs both have REDIS_URL (broadcasts through Redis in both)"
    )
    redis = await start_redis(b, "n4-redis")
    nodes: dict[str, _Node] = {}
    try:
        layouts = {
            "redis-on": {"REDIS_URL": redis.url, "ROOMCAST_REST_RATE_LIMIT": NEVER},
            "redis-off": {"REDIS_URL": redis.url, "ROOMCAST_REST_RATE_LIMIT": "0"},
            "memory-on": {"ROOMCAST_REST_RATE_LIMIT": NEVER},
            "memory-off": {"ROOMCAST_REST_RATE_LIMIT": "0"},
        }
        for name, settings in layouts.items():
            database = f"bench_n4_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
            dsn = await b._create_database(database)  # dropped with the run's other databases
            pool = await connect(dsn, max_size=2)
            try:
                server = await b.start_app(f"n4-{name}", {"DATABASE_URL": dsn} | settings)
            except BaseException:
                await pool.close()
                raise
            nodes[name] = _Node(name, server, pool)
        for where, label in (("redis", "in Redis"), ("memory", "in memory")):
            rate = s.figure(
                f"{where}.c{plan.n4_concurrency}",
                f"commands/s, concurrency {plan.n4_concurrency}, REST limit {label}",
                "cmd/s",
                "the same node, the limit off",
            )
            p50 = s.figure(
                f"{where}.c1.p50",
                f"command latency p50, concurrency 1, REST limit {label}",
                "ms",
                "the same node, the limit off",
                higher_is_better=False,
            )
            on, off = nodes[f"{where}-on"], nodes[f"{where}-off"]
            for r in range(plan.repeats):
                order = (on, off) if r % 2 == 0 else (off, on)
                got: dict[str, tuple[float, float]] = {}
                for node in order:
                    cmds, _ = await _round(b, node.server, plan.n4_concurrency, plan.n4_commands)
                    _, ms = await _round(b, node.server, 1, plan.n4_commands // 4)
                    got[node.name] = (cmds, ms)
                    await drained(node.pool)  # its relay's work is done before the next round
                    log(
                        f"N4 #{r + 1} {node.name}: {cmds:.0f} cmd/s at "
                        f"c={plan.n4_concurrency}, p50 {ms:.2f} ms at c=1"
                    )
                rate.ours.append(got[on.name][0])
                rate.base.append(got[off.name][0])
                p50.ours.append(got[on.name][1])
                p50.base.append(got[off.name][1])
        # The 'in Redis' node did count in Redis: its /health says the shared limits
        # answered and none of their calls failed (a failing one counts locally).
        async with b.http(nodes["redis-on"].server) as http:
            health = await http.json("GET", "/health")
        shared = health["node"]["redis"].get("limits")
        s.details["redis_limits"] = shared
        if not shared or not shared["ok"] or shared["failures"]:
            raise RuntimeError(f"N4: the REST limit did not run in Redis: {shared!r}")
    finally:
        for node in nodes.values():
            await b.procs.stop(node.server.proc)
            await node.pool.close()
        redis.resume()
        await b.procs.stop(redis.proc)
    return s
