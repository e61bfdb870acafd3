"""P5 reconnect storm: N clients, each 100 events behind, reconnect at once.

The clients are subscribed, then all drop their websocket; 100 events are
committed (and relayed to nobody); then every client reconnects (Engine.IO
handshake, CONNECT with its JWT) and subscribes with its own last seq, all at
once. Time: from the first reconnect to the last client having the head event.
A client that never catches up within the deadline is counted (must be 0).
Ours runs with ``batch: true`` (as ``RoomcastClient`` subscribes: the replay is
one ``room:events`` frame) and, for comparison, without (not at the largest N).

Baselines: the same storm against the bare server, which replays the 100
events from memory, and against the Node.js peer with socket.io's connection
state recovery (in-memory adapter; ``--mode recovery``): there the clients
reconnect with their session id and the offset of the last packet they got,
the server restores their rooms and sends what they missed, and no subscribe
is needed. Recovery needs an offset, i.e. one packet received before the drop
(socket.io #4888), so in the Node round each client first receives one event.
The JWT middleware runs on a recovered connection too (``skipMiddlewares:
false``), as roomcast checks the token on every connect.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.context import Bench, log
from bench.procs import Server
from bench.scenarios.common import arm, connect_clients, finished_at, wait
from bench.stats import Scenario, Target


def limit(clients: int) -> float:
    """The target for ``clients``: < 1 s up to 1,000 clients, < 5 s at 5,000."""
    return 1.0 if clients <= 1000 else 5.0


async def storm(
    b: Bench,
    server: Server,
    room: str,
    clients: int,
    behind: int,
    *,
    batch: bool = False,
    recovery: bool = False,
) -> dict[str, Any]:
    head = await connect_clients(b, server, clients, room, batch=batch, recovery=recovery)
    if recovery:
        # An offset to recover from: every client gets one event before the drop.
        await arm(b, head + 1)
        if server is b.app:  # roomcast: a committed event, relayed with its offset
            head = await b.streams.grow(room, 1)
            await b.streams.notify()
        else:
            head = (await b.emit_bare(1, 0, server))["head"]
        primed = await wait(b, 60)
        if primed["caught_up"] != primed["clients"]:
            raise RuntimeError(
                f"{server.name}: {primed['clients'] - primed['caught_up']} "
                "clients did not get the priming event"
            )
    await b.workers.each("close")
    await asyncio.sleep(0.5)  # let the server see the disconnects
    if server is b.app:
        head = await b.streams.grow(room, behind)
        await b.streams.notify()
        await b.outbox_drained()
    else:
        head = await b.bare_history(behind, server)
    await arm(b, head)
    token = b.token()
    cpu = server.cpu()
    starts = await b.workers.each("reconnect", url=server.url, token=token, room=room)
    started = min(x["t_start"] for x in starts)
    result = await wait(b, b.plan.p5_deadline)
    result["seconds"] = finished_at(result) - started
    result["never"] = result["clients"] - result["caught_up"]
    # What limits the storm: the server's CPU per reconnecting client (handshake, token,
    # subscribe and replay), against the wall time it took.
    result["server_cpu_ms_per_client"] = (server.cpu() - cpu) * 1000 / max(1, clients)
    await b.workers.forget()
    return result


async def run(b: Bench) -> Scenario:
    plan = b.plan
    behind = plan.p5_behind
    s = Scenario("P5", f"Reconnect storm: N clients each {behind} events behind")
    s.note = (
        f"deadline {plan.p5_deadline:g} s; bare replays from memory; Node.js peer: "
        "socket.io connection state recovery, in-memory adapter"
    )
    recovering: Server | None = None
    if b.node_peer.available:
        recovering = await b.start_node("node-recovery", "recovery")
    else:
        s.note += f"; {b.node_peer.note}"
    try:
        for clients in plan.p5_clients:
            await _level(b, s, clients, behind, recovering)
    finally:
        if recovering is not None:
            await b.stop(recovering)
    return s


async def _level(
    b: Bench, s: Scenario, clients: int, behind: int, recovering: Server | None
) -> None:
    plan = b.plan
    largest = clients == max(plan.p5_clients) and len(plan.p5_clients) > 1
    within = limit(clients)
    lower = {"higher_is_better": False}
    took = s.figure(
        f"n{clients}",
        f"time until all {clients} caught up, room:events frames (batch: true)",
        "s",
        "bare python-socketio, replay from memory",
        target=Target("<", within, on="ours", text=f"all caught up < {within:g} s"),
        **lower,
    )
    never = s.figure(
        f"n{clients}.never",
        f"clients never caught up, of {clients}",
        "clients",
        "bare python-socketio",
        target=Target("==", 0, on="ours", stat="max", text="0 in every round"),
        **lower,
    )
    took_node = s.figure(
        f"n{clients}.node",
        f"time until all {clients} caught up, frames, vs the Node.js peer's recovery",
        "s",
        "Node.js socket.io 4.8, connection state recovery",
        **lower,
    )
    never_node = s.figure(
        f"n{clients}.node.never",
        f"clients never caught up, of {clients}, vs the Node.js peer's recovery",
        "clients",
        "Node.js socket.io 4.8, connection state recovery",
        **lower,
    )
    recovered = s.figure(
        f"n{clients}.recovery",
        f"time until all {clients} caught up, connection state recovery instead of lastSeq "
        "(one message per event)",
        "s",
        "bare python-socketio, replay from memory",
        **lower,
    )
    singles = None
    if not largest:
        singles = (
            s.figure(
                f"n{clients}.single",
                f"time until all {clients} caught up, one message per event",
                "s",
                "bare python-socketio, replay from memory",
                **lower,
            ),
            s.figure(
                f"n{clients}.single.never",
                f"clients never caught up, of {clients}, one message per event",
                "clients",
                "bare python-socketio",
                target=Target("==", 0, on="ours", stat="max", text="0 in every round"),
                **lower,
            ),
        )
    paths = (
        "app",
        "recover",
        *(("single",) if singles else ()),
        "bare",
        *(("node",) if recovering is not None else ()),
    )
    rounds = []
    for r in range(plan.repeats):
        order = paths if r % 2 == 0 else tuple(reversed(paths))
        got = {}
        for which in order:
            if which == "bare":
                got[which] = await storm(b, b.bare, "bench", clients, behind)
            elif which == "node":
                assert recovering is not None
                got[which] = await storm(b, recovering, "bench", clients, behind, recovery=True)
            elif which == "recover":
                room = await b.create_room()
                got[which] = await storm(b, b.app, room, clients, behind, recovery=True)
            else:
                room = await b.create_room()
                got[which] = await storm(b, b.app, room, clients, behind, batch=which == "app")
        took.ours.append(got["app"]["seconds"])
        took.base.append(got["bare"]["seconds"])
        never.ours.append(got["app"]["never"])
        never.base.append(got["bare"]["never"])
        recovered.ours.append(got["recover"]["seconds"])
        recovered.base.append(got["bare"]["seconds"])
        if "node" in got:
            took_node.ours.append(got["app"]["seconds"])
            took_node.base.append(got["node"]["seconds"])
            never_node.ours.append(got["app"]["never"])
            never_node.base.append(got["node"]["never"])
        if singles:
            singles[0].ours.append(got["single"]["seconds"])
            singles[0].base.append(got["bare"]["seconds"])
            singles[1].ours.append(got["single"]["never"])
            singles[1].base.append(got["bare"]["never"])
        keys = (
            "seconds",
            "never",
            "received",
            "gaps",
            "dups",
            "errors",
            "recovered",
            "server_cpu_ms_per_client",
        )
        rounds.append({k: {x: v.get(x) for x in keys} for k, v in got.items()})
        log(
            f"P5 n={clients} #{r + 1}: app {got['app']['seconds']:.2f} s "
            f"({got['app']['never']} never)"
            + (f", single {got['single']['seconds']:.2f} s" if "single" in got else "")
            + f", recovery {got['recover']['seconds']:.2f} s ({got['recover']['never']} never, "
            f"{got['recover']['recovered']} recovered)"
            + f", bare {got['bare']['seconds']:.2f} s ({got['bare']['never']} never)"
            + (
                f", Node.js recovery {got['node']['seconds']:.2f} s "
                f"({got['node']['never']} never, {got['node']['recovered']} recovered)"
                if "node" in got
                else ""
            )
        )
    s.details[f"n{clients}"] = rounds
    if recovering is None:
        took_node.note = never_node.note = b.node_peer.note
