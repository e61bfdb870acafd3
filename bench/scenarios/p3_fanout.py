"""P3 fan-out: delivered messages/s into one room of N clients, relay vs bare emit.

Relay path: E events are committed to the room in one append (as a burst of
commands would leave them in the outbox) and the relay is woken with NOTIFY, as
the app does after a commit; it publishes them through the gateway. Baseline:
the bare python-socketio server emits the same payloads to its room as fast as
it can, awaiting each emit as the relay does. Both: delivered messages divided
by the time from the trigger to the last client receiving the last event.

SSE: the same relay round with the clients following the room over Server-Sent Events
(``GET /api/rooms/{id}/stream``, http/sse.py) instead of Socket.IO: delivered events/s
against the same bare emit, and the server's CPU per delivered event. No target: the
issue asks for the figure next to Socket.IO's.

Batch: the same relay round with clients subscribed with ``batch: true``
(``room:events`` frames: a relay batch published in one go is one frame per
client). Delivered *events*/s against the same bare emit (one message per
event); the issue's aim for this opt-in is ≥ 3×.

The Node.js peer (bench/peers/node/, socket.io 4.8) gets the same round as the
bare server: the same payloads, built before the clock starts, broadcast to its
room one message per event in one synchronous loop (its fastest way: each
``emit`` encodes the packet once and writes it to every socket). Ours against
it: one message per event (≥ 1.5× at 1,000 clients), and our frames against
that, its best (≥ 5×).
"""

from __future__ import annotations

import time
from typing import Any

from bench.context import Bench, log
from bench.procs import Server
from bench.scenarios.common import arm, connect_clients, finished_at, wait
from bench.stats import Scenario, Target


def _timeout(clients: int, events: int) -> float:
    return 30 + clients * events / 2000


async def relay_round(
    b: Bench, clients: int, events: int, *, batch: bool = False, transport: str = "socketio"
) -> dict[str, Any]:
    """``transport`` "sse": the clients follow the room over Server-Sent Events."""
    room = await b.create_room()
    head = await connect_clients(b, b.app, clients, room, batch=batch, transport=transport)
    loaded = await b.streams.store.load(room)
    head = max(head, loaded.version)
    pendings = b.streams.prepare_updates(loaded, events, chunk=events)
    await arm(b, head + events)
    cpu = b.app.cpu()
    started = time.time()
    await b.streams.append_all(pendings)
    await b.streams.notify()
    result = await wait(b, _timeout(clients, events))
    result["server_cpu"] = b.app.cpu() - cpu
    result["seconds"] = finished_at(result) - started
    await b.workers.forget()
    await b.outbox_drained()
    return result


async def bare_round(
    b: Bench, clients: int, events: int, server: Server | None = None
) -> dict[str, Any]:
    """The bare server's round, or the Node peer's (``server``)."""
    server = server or b.bare
    head = await connect_clients(b, server, clients, "bench")
    await arm(b, head + events)
    cpu = server.cpu()
    started = time.time()
    await b.emit_bare(events, 0, server)
    result = await wait(b, _timeout(clients, events))
    result["server_cpu"] = server.cpu() - cpu
    result["seconds"] = finished_at(result) - started
    await b.workers.forget()
    return result


def _rate(result: dict[str, Any]) -> float:
    return float(result["received"] / result["seconds"])


async def bare_capacity(b: Bench, clients: int) -> float:
    """The bare emit's delivered msgs/s at ``clients`` (measured in P3, or now)."""
    known = b.results.get("P3.bare", {}).get(clients)
    if known:
        return float(sorted(known)[len(known) // 2])
    events = max(20, 20_000 // clients)
    return _rate(await bare_round(b, clients, events))


async def run(b: Bench) -> Scenario:
    plan = b.plan
    s = Scenario("P3", "Fan-out: delivered msgs/s to 1 room × N clients, relay vs bare emit")
    s.note = (
        "E events committed at once (relay) or emitted at once (bare, Node peer); websocket clients"
    )
    if b.node is None:
        s.note += f"; {b.node_peer.note}"
    b.results.setdefault("P3.bare", {})
    biggest = max(clients for clients, _ in plan.p3_runs)
    for clients, events in plan.p3_runs:
        # The targets against the Node peer are set at 1,000 clients (any size in --quick).
        at_scale = (clients == biggest and clients >= 1000) or plan.mode == "quick"
        fig = s.figure(
            f"n{clients}",
            f"delivered msgs/s, 1 room × {clients} clients ({events} events)",
            "msg/s",
            "bare python-socketio emit",
            target=Target(">=", 0.9, text="≥ 0.9× bare emit"),
        )
        node = s.figure(
            f"n{clients}.node",
            f"delivered msgs/s, 1 room × {clients} clients, vs the Node.js peer",
            "msg/s",
            "Node.js socket.io 4.8 broadcast",
            target=Target(">=", 1.5, text="≥ 1.5× Node.js peer") if at_scale else None,
        )
        cpu = s.figure(
            f"n{clients}.cpu",
            f"server CPU per delivered message, {clients} clients",
            "µs",
            "bare python-socketio emit",
            higher_is_better=False,
        )
        node_cpu = s.figure(
            f"n{clients}.node.cpu",
            f"server CPU per delivered message, {clients} clients, vs the Node.js peer",
            "µs",
            "Node.js socket.io 4.8 broadcast",
            higher_is_better=False,
        )
        batched = s.figure(
            f"n{clients}.batch",
            f"delivered events/s in room:events frames, 1 room × {clients} clients",
            "events/s",
            "bare python-socketio emit (one message per event)",
            target=Target(">=", 3.0, text="≥ 3× bare emit"),
        )
        batched_node = s.figure(
            f"n{clients}.batch.node",
            f"delivered events/s in room:events frames, {clients} clients, vs the Node.js peer",
            "events/s",
            "Node.js socket.io 4.8 broadcast (one message per event, its best)",
            target=Target(">=", 5.0, text="≥ 5× Node.js peer") if at_scale else None,
        )
        batch_cpu = s.figure(
            f"n{clients}.batch.cpu",
            f"server CPU per delivered event in frames, {clients} clients",
            "µs",
            "bare python-socketio emit",
            higher_is_better=False,
        )
        sse = s.figure(
            f"n{clients}.sse",
            f"delivered events/s over SSE, 1 room × {clients} streams",
            "events/s",
            "bare python-socketio emit (one message per event)",
        )
        sse_cpu = s.figure(
            f"n{clients}.sse.cpu",
            f"server CPU per delivered event over SSE, {clients} streams",
            "µs",
            "bare python-socketio emit",
            higher_is_better=False,
        )
        checks: list[dict[str, Any]] = []
        paths = ("relay", "batch", "sse", "bare", *(("node",) if b.node is not None else ()))
        for r in range(plan.repeats):
            order = paths if r % 2 == 0 else tuple(reversed(paths))
            got = {}
            for which in order:
                if which == "bare":
                    got[which] = await bare_round(b, clients, events)
                elif which == "node":
                    got[which] = await bare_round(b, clients, events, b.node)
                elif which == "sse":
                    got[which] = await relay_round(b, clients, events, transport="sse")
                else:
                    got[which] = await relay_round(b, clients, events, batch=which == "batch")
            for which in order:
                res = got[which]
                checks.append(
                    {
                        "path": which,
                        "expected": clients * events,
                        "received": res["received"],
                        "caught_up": res["caught_up"],
                        "gaps": res["gaps"],
                        "dups": res["dups"],
                        "dropped": res["dropped"],
                        "seconds": res["seconds"],
                        "server_cpu": res["server_cpu"],
                    }
                )
            fig.ours.append(_rate(got["relay"]))
            fig.base.append(_rate(got["bare"]))
            batched.ours.append(_rate(got["batch"]))
            batched.base.append(_rate(got["bare"]))
            sse.ours.append(_rate(got["sse"]))
            sse.base.append(_rate(got["bare"]))
            b.results["P3.bare"].setdefault(clients, []).append(_rate(got["bare"]))
            series = [
                ("relay", cpu.ours),
                ("bare", cpu.base),
                ("batch", batch_cpu.ours),
                ("bare", batch_cpu.base),
                ("sse", sse_cpu.ours),
                ("bare", sse_cpu.base),
            ]
            if "node" in got:
                node.ours.append(_rate(got["relay"]))
                node.base.append(_rate(got["node"]))
                batched_node.ours.append(_rate(got["batch"]))
                batched_node.base.append(_rate(got["node"]))
                series += [("relay", node_cpu.ours), ("node", node_cpu.base)]
            for which, values in series:
                res = got[which]
                values.append(res["server_cpu"] / max(1, res["received"]) * 1e6)
            log(
                f"P3 n={clients} #{r + 1}: relay {_rate(got['relay']):.0f} msg/s, "
                f"batch {_rate(got['batch']):.0f} events/s, SSE {_rate(got['sse']):.0f} events/s, "
                f"bare {_rate(got['bare']):.0f} msg/s"
                + (f", Node.js {_rate(got['node']):.0f} msg/s" if "node" in got else "")
            )
        s.details[f"n{clients}"] = checks
        incomplete = [c for c in checks if c["received"] != c["expected"] or c["gaps"]]
        if incomplete:
            fig.note = f"{len(incomplete)} round(s) lost or skipped messages: see details"
        if any(c["path"] == "sse" for c in incomplete):
            sse.note = "an SSE round lost or skipped events: see details"
        if b.node is None:
            node.note = batched_node.note = b.node_peer.note
    return s
