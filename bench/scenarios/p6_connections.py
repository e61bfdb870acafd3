"""P6 connections: server RSS per idle connection at 1,000 and 5,000 clients.

A fresh server process per round (so earlier scenarios' allocations do not
hide or inflate the growth), warmed with a few connections, then N clients
connect, authenticate and subscribe to one room and stay idle. Per connection:
(RSS with N clients − RSS before any) ÷ N. Baselines: the same against a fresh
bare python-socketio server (no auth, no database) and a fresh Node.js peer
(socket.io 4.8, JWT checked, plain mode: no connection state recovery). Node's
RSS includes whatever its garbage collector has not returned yet, as ours does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.context import Bench, log
from bench.procs import Server
from bench.scenarios.common import connect_clients
from bench.stats import Scenario, Target

WARM = 20


async def _measure(b: Bench, server: Server, room: str, counts: tuple[int, ...]) -> dict[int, Any]:
    await connect_clients(b, server, WARM, room)
    await b.workers.forget()
    await asyncio.sleep(b.plan.p6_settle)
    before = server.rss()
    out: dict[int, Any] = {}
    connected = 0
    for count in counts:
        await connect_clients(b, server, count - connected, room, concurrency=25)
        connected = count
        await asyncio.sleep(b.plan.p6_settle)
        rss = server.rss()
        out[count] = {"rss_before": before, "rss": rss, "per_connection": (rss - before) / count}
    await b.workers.forget()
    return out


async def _fresh(b: Bench, which: str, r: int, counts: tuple[int, ...]) -> dict[int, Any]:
    if which == "app":
        server = await b.start_app(f"p6-app-{r}")
        try:
            async with b.http(server) as http:
                room = await b.create_room(http)
            return await _measure(b, server, room, counts)
        finally:
            await b.workers.forget()
            await b.stop(server)
    if which == "node":
        server = await b.start_node(f"p6-node-{r}")
    else:
        server = await b.start_bare(f"p6-bare-{r}")
    try:
        return await _measure(b, server, "bench", counts)
    finally:
        await b.workers.forget()
        await b.stop(server)


async def run(b: Bench) -> Scenario:
    plan = b.plan
    counts = plan.p6_counts
    s = Scenario("P6", "Connections: server RSS per idle connection")
    s.note = "fresh server per round; idle = connected, authenticated, subscribed to one room"
    if not b.node_peer.available:
        s.note += f"; {b.node_peer.note}"
    lower = {"higher_is_better": False}
    figs = {
        n: s.figure(
            f"n{n}",
            f"RSS per idle connection at {n} clients",
            "KB",
            "bare python-socketio server",
            target=Target("<=", 30, on="ours", text="≤ 30 KB per connection"),
            **lower,
        )
        for n in counts
    }
    node_figs = {
        n: s.figure(
            f"n{n}.node",
            f"RSS per idle connection at {n} clients, vs the Node.js peer",
            "KB",
            "Node.js socket.io 4.8 server",
            target=Target("<=", 1.0, text="≤ the Node.js peer"),
            note="" if b.node_peer.available else b.node_peer.note,
            **lower,
        )
        for n in counts
    }
    paths = ("app", "bare", *(("node",) if b.node_peer.available else ()))
    rounds = []
    for r in range(plan.repeats):
        order = paths if r % 2 == 0 else tuple(reversed(paths))
        got = {which: await _fresh(b, which, r, counts) for which in order}
        for n, fig in figs.items():
            fig.ours.append(got["app"][n]["per_connection"] / 1024)
            fig.base.append(got["bare"][n]["per_connection"] / 1024)
            if "node" in got:
                node_figs[n].ours.append(got["app"][n]["per_connection"] / 1024)
                node_figs[n].base.append(got["node"][n]["per_connection"] / 1024)
        rounds.append(got)
        log(
            f"P6 #{r + 1}: "
            + ", ".join(
                f"{n}: "
                + ", ".join(
                    f"{which} {got[which][n]['per_connection'] / 1024:.1f} KB" for which in order
                )
                for n in counts
            )
        )
    s.details["rounds"] = rounds
    return s
