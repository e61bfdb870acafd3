"""N3 the time to repair a hole: Redis paused (SIGSTOP) while a room gets events.

The cluster of ncluster.py with N clients split over its two nodes, subscribed
to one room. A **paused** round SIGSTOPs the redis-server (connections stay
open and nothing answers: the relay's publishes time out, the nodes hear
nothing), commits E events in one append, and times the commit → every client
holding the last of them: only the nodes' position checks against PostgreSQL
(gateway/roomwatch.py, every ``ROOMCAST_POSITION_CHECK``, 0.5 s as shipped) can
deliver them. Then SIGCONT: the relay publishes the rows it kept, Redis also
carries the publishes that were waiting in its socket, and the nodes must drop
every copy; a marker event after the outbox drained must then be the only thing
each client receives (no duplicate, no gap). Baseline: the same E events with
Redis running, delivered through it, in the same repeat, in alternating order.

Target: every paused round repaired within 2 s (issue 19, ADR 0007).
"""

from __future__ import annotations

import time
from typing import Any

from bench.context import Bench, log
from bench.procs import Workers
from bench.scenarios.common import arm, connect_clients, wait
from bench.scenarios.ncluster import Cluster, cluster, drained
from bench.scenarios.nside import refilled
from bench.stats import Scenario, Target

WITHIN = 15.0
"""Seconds a round may take before it counts as not repaired."""


async def _commit(c: Cluster, room: str, events: int) -> float:
    """``events`` renames of ``room`` in one append, the relay woken; when it started."""
    loaded = await c.streams.store.load(room)
    pendings = c.streams.prepare_updates(loaded, events, chunk=events)
    started = time.time()
    await c.streams.append_all(pendings)
    await c.streams.notify()
    return started


def _took(result: dict[str, Any], started: float) -> float:
    """ms from the commit to the last client holding the target (WITHIN if not all did)."""
    if result["caught_up"] != result["clients"] or result["t_last"] is None:
        return WITHIN * 1000
    return (float(result["t_last"]) - started) * 1000


async def _running(b: Bench, c: Cluster, room: str, head: int, events: int) -> dict[str, Any]:
    await arm(b, head + events)
    started = await _commit(c, room, events)
    result = await wait(b, WITHIN)
    return {"ms": _took(result, started), "head": head + events, "delivery": result}


async def _paused(b: Bench, c: Cluster, room: str, head: int, events: int) -> dict[str, Any]:
    await arm(b, head + events)
    refills = await refilled(c.nodes)
    c.redis.pause()
    try:
        started = await _commit(c, room, events)
        result = await wait(b, WITHIN)
        # Counting afresh before Redis comes back: every copy it then carries lands here.
        await arm(b, head + events + 1)
    finally:
        c.redis.resume()
    await drained(c.pool)
    await _commit(c, room, 1)  # the marker: behind every republished copy in Redis's order
    after = await wait(b, WITHIN)
    return {
        "ms": _took(result, started),
        "head": head + events + 1,
        "delivery": result,
        "after_resume": after,
        "refilled": await refilled(c.nodes) - refills,
    }


def _faults(delivery: dict[str, Any], expected: int) -> int:
    """Messages missing, skipped or repeated at the clients in one round."""
    missing = max(0, expected - int(delivery["received"]))
    extra = max(0, int(delivery["received"]) - expected)
    return missing + extra + int(delivery["gaps"]) + int(delivery["dups"])


async def run(b: Bench) -> Scenario:
    plan = b.plan
    clients, events = plan.n3_clients, plan.n3_events
    s = Scenario("N3", "Time to repair a hole: Redis paused (SIGSTOP) while a room gets events")
    s.note = (
        f"{clients} clients split over two gateway nodes, {events} events per round in one "
        f"append, {plan.n3_pauses} pauses per repeat; position check every 0.5 s (default)"
    )
    repair = s.figure(
        "repair",
        f"commit → every client, Redis paused (SIGSTOP), {clients} clients on two nodes",
        "ms",
        "the same with Redis running (delivered through it)",
        higher_is_better=False,
        target=Target("<", 2000, on="ours", stat="max", text="every pause repaired < 2 s"),
    )
    faults = s.figure(
        "faults",
        "messages missing, skipped or repeated at the clients (a paused round and the "
        "marker after SIGCONT)",
        "messages",
        "the same with Redis running",
        higher_is_better=False,
        target=Target("==", 0, on="ours", stat="max", text="0 in every round"),
    )
    rounds: list[dict[str, Any]] = []
    async with cluster(b, "n3") as c:
        async with b.http(c.nodes[0]) as http:
            room = await b.create_room(http, "Repair")
        head = 0
        for node, n in zip(c.nodes, Workers.split(clients, len(c.nodes)), strict=True):
            head = max(head, await connect_clients(b, node, n, room))
        await drained(c.pool)
        head = max(head, (await c.streams.store.load(room)).version)
        try:
            for r in range(plan.repeats):
                for k in range(plan.n3_pauses):
                    got: dict[str, dict[str, Any]] = {}
                    order = ("running", "paused") if (r + k) % 2 == 0 else ("paused", "running")
                    for which in order:
                        step = _running if which == "running" else _paused
                        got[which] = await step(b, c, room, head, events)
                        head = got[which]["head"]
                    paused, running = got["paused"], got["running"]
                    repair.ours.append(paused["ms"])
                    repair.base.append(running["ms"])
                    faults.ours.append(
                        _faults(paused["delivery"], clients * events)
                        + _faults(paused["after_resume"], clients)
                    )
                    faults.base.append(_faults(running["delivery"], clients * events))
                    rounds.append(
                        {
                            "repeat": r,
                            "paused_ms": paused["ms"],
                            "refilled": paused["refilled"],
                            "running_ms": running["ms"],
                            "paused": _slim(paused["delivery"]),
                            "after_resume": _slim(paused["after_resume"]),
                            "running": _slim(running["delivery"]),
                        }
                    )
                    log(
                        f"N3 #{r + 1}.{k + 1}: paused {paused['ms']:.0f} ms, "
                        f"running {running['ms']:.0f} ms, faults {faults.ours[-1]:.0f}, "
                        f"{paused['refilled']} events refilled"
                    )
        finally:
            await b.workers.forget()
    s.details["rounds"] = rounds
    return s


def _slim(delivery: dict[str, Any]) -> dict[str, Any]:
    keys = ("clients", "caught_up", "received", "gaps", "dups", "dropped", "errors")
    return {k: delivery[k] for k in keys}
