"""One layout N1–N3 compare: one node as shipped, or the two-node cluster through Redis.

A round runs against a ``Side``: the servers clients and commands are spread
over, the database they share (for direct appends and the outbox), and the
processes whose CPU the round reports.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from bench.context import Bench, Streams
from bench.httpc import Http, HttpError
from bench.procs import Server, Workers
from bench.scenarios.common import arm, connect_clients, finished_at, wait
from bench.scenarios.ncluster import Cluster, CpuMeter, backends, database_of, drained, meter

__all__ = [
    "SERVER_SIDE",
    "Side",
    "command_round",
    "cores_text",
    "fanout_round",
    "one_node",
    "refilled",
    "server_cpu",
    "two_nodes",
]

SERVER_SIDE = ("app", "node0", "node1", "relay", "redis", "postgres")
"""The groups whose CPU is the server side's cost (the rest is load and others)."""


@dataclass
class Side:
    name: str
    servers: list[Server]
    streams: Streams
    pool: asyncpg.Pool
    database: str
    pids: dict[str, int]

    async def meter(self, b: Bench) -> CpuMeter:
        pg = await backends(self.pool, self.database)
        return meter(b, {name: [pid] for name, pid in self.pids.items()}, pg)


def one_node(b: Bench) -> Side:
    """``roomcast serve`` as shipped: relay inside, no Redis."""
    return Side(
        "one node",
        [b.app],
        b.streams,
        b.pool,
        database_of(b.app_dsn),
        {"app": b.app.pid},
    )


def two_nodes(c: Cluster) -> Side:
    return Side("two nodes", c.nodes, c.streams, c.pool, c.database, c.pids())


async def refilled(servers: list[Server]) -> int:
    """Events the servers' position checks have delivered from the log so far (their
    /health ``node.positions.refilledEvents``): what did not come through Redis."""
    total = 0
    for server in servers:
        async with Http(server.port) as http:
            _, body = await http.request("GET", "/health")
        positions = msgspec.json.decode(body)["node"]["positions"]
        total += int(positions["refilledEvents"])
    return total


def cores_text(cpu: dict[str, Any]) -> str:
    """A round's cores per process, for the log line."""
    shown = {k: v for k, v in cpu.items() if k != "wall_s" and v}
    return ", ".join(f"{k} {v:.2f}" for k, v in shown.items())


def server_cpu(cpu: dict[str, Any]) -> float:
    """Cores the server side used in a round (nodes, relay, Redis, PostgreSQL backends)."""
    return sum(float(cpu.get(name, 0.0)) for name in SERVER_SIDE)


async def fanout_round(
    b: Bench,
    side: Side,
    clients: int,
    events: int,
    *,
    batch: bool = False,
    from_commit: bool = False,
) -> dict[str, Any]:
    """P3's round with the clients split evenly over ``side``'s servers: ``events``
    committed in one append, the relay woken by NOTIFY; until every client has the last.

    The clock starts before the append (as P3's), or with ``from_commit`` once it has
    committed (where a large append's own time would hide the relay's). ``refilled``:
    the events sockets got from the position checks rather than from the relay."""
    async with b.http(side.servers[0]) as http:
        room = await b.create_room(http)
    head = 0
    for server, n in zip(side.servers, Workers.split(clients, len(side.servers)), strict=True):
        head = max(head, await connect_clients(b, server, n, room, batch=batch))
    loaded = await side.streams.store.load(room)
    head = max(head, loaded.version)
    pendings = side.streams.prepare_updates(loaded, events, chunk=events)
    await arm(b, head + events)
    refills = await refilled(side.servers)
    cpu = await side.meter(b)
    if not from_commit:
        cpu.start()
    started = time.time()
    await side.streams.append_all(pendings)
    if from_commit:
        cpu.start()
        started = time.time()
    await side.streams.notify()
    result = await wait(b, 30 + clients * events / 2000)
    result["seconds"] = finished_at(result) - started
    result["cpu"] = cpu.stop()
    result["expected"] = clients * events
    result["refilled"] = await refilled(side.servers) - refills
    await b.workers.forget()
    await drained(side.pool)
    return result


async def command_round(b: Bench, side: Side, concurrency: int, total: int) -> dict[str, Any]:
    """P1's renames at ``concurrency`` (a room per connection), the connections spread
    evenly over ``side``'s servers; ``total`` commands in all."""
    shares = Workers.split(total, concurrency)
    https = [b.http(side.servers[i % len(side.servers)]) for i in range(concurrency)]
    try:
        rooms = [await b.create_room(h) for h in https]
        for http in https:  # idle since its create: past the keep-alive timeout, maybe
            await http.close()

        async def run(i: int, count: int) -> None:
            http, path = https[i], f"/api/rooms/{rooms[i]}"
            for j in range(count):
                status, body = await http.request("PATCH", path, {"name": f"name {j}"})
                if status != 200:
                    raise HttpError(f"PATCH {path}: HTTP {status}: {body[:200]!r}")

        await asyncio.gather(*(run(i, 5) for i in range(concurrency)))  # warm-up
        cpu = await side.meter(b)
        cpu.start()
        started = time.perf_counter()
        await asyncio.gather(*(run(i, shares[i]) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        usage = cpu.stop()
    finally:
        for http in https:
            await http.close()
    await drained(side.pool)
    return {"rate": total / elapsed, "seconds": elapsed, "cpu": usage}
