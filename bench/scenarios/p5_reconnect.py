"""P5 reconnect storm: N clients, each 100 events behind, reconnect at once.

The clients are subscribed, then all drop their websocket; 100 events are
committed (and relayed to nobody); then every client reconnects (Engine.IO
handshake, CONNECT with its JWT) and subscribes with its own last seq, all at
once. Time: from the first reconnect to the last client having the head event.
A client that never catches up within the deadline is counted (must be 0).
Baseline: the same storm against the bare server, which replays the 100 events
from memory. Ours runs with ``batch: true`` (as ``RoomcastClient`` subscribes:
the replay is one ``room:events`` frame) and, for comparison, without.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.context import Bench, log
from bench.procs import Server
from bench.scenarios.common import arm, connect_clients, finished_at, wait
from bench.stats import Scenario, Target


async def storm(
    b: Bench, server: Server, room: str, clients: int, behind: int, *, batch: bool = False
) -> dict[str, Any]:
    head = await connect_clients(b, server, clients, room, batch=batch)
    await b.workers.each("close")
    await asyncio.sleep(0.5)  # let the server see the disconnects
    if server is b.app:
        head = await b.streams.grow(room, behind)
        await b.streams.notify()
        await b.outbox_drained()
    else:
        head = await b.bare_history(behind)
    await arm(b, head)
    token = b.token()
    starts = await b.workers.each("reconnect", url=server.url, token=token, room=room)
    started = min(x["t_start"] for x in starts)
    result = await wait(b, b.plan.p5_deadline)
    result["seconds"] = finished_at(result) - started
    result["never"] = result["clients"] - result["caught_up"]
    await b.workers.forget()
    return result


async def run(b: Bench) -> Scenario:
    plan = b.plan
    behind = plan.p5_behind
    s = Scenario("P5", f"Reconnect storm: N clients each {behind} events behind")
    s.note = f"deadline {plan.p5_deadline:g} s; baseline replays from memory"
    for clients in plan.p5_clients:
        took = s.figure(
            f"n{clients}",
            f"time until all {clients} caught up, room:events frames (batch: true)",
            "s",
            "bare python-socketio, replay from memory",
            higher_is_better=False,
            target=Target("<", 2.0, on="ours", text="all caught up < 2 s"),
        )
        never = s.figure(
            f"n{clients}.never",
            f"clients never caught up, of {clients}",
            "clients",
            "bare python-socketio",
            higher_is_better=False,
            target=Target("==", 0, on="ours", stat="max", text="0 in every round"),
        )
        took_single = s.figure(
            f"n{clients}.single",
            f"time until all {clients} caught up, one message per event",
            "s",
            "bare python-socketio, replay from memory",
            higher_is_better=False,
        )
        never_single = s.figure(
            f"n{clients}.single.never",
            f"clients never caught up, of {clients}, one message per event",
            "clients",
            "bare python-socketio",
            higher_is_better=False,
            target=Target("==", 0, on="ours", stat="max", text="0 in every round"),
        )
        rounds = []
        for r in range(plan.repeats):
            order = ("app", "single", "bare") if r % 2 == 0 else ("bare", "single", "app")
            got = {}
            for which in order:
                if which == "bare":
                    got[which] = await storm(b, b.bare, "bench", clients, behind)
                else:
                    room = await b.create_room()
                    got[which] = await storm(b, b.app, room, clients, behind, batch=which == "app")
            took.ours.append(got["app"]["seconds"])
            took.base.append(got["bare"]["seconds"])
            never.ours.append(got["app"]["never"])
            never.base.append(got["bare"]["never"])
            took_single.ours.append(got["single"]["seconds"])
            took_single.base.append(got["bare"]["seconds"])
            never_single.ours.append(got["single"]["never"])
            never_single.base.append(got["bare"]["never"])
            rounds.append(
                {
                    k: {x: v[x] for x in ("seconds", "never", "received", "gaps", "dups", "errors")}
                    for k, v in got.items()
                }
            )
            log(
                f"P5 n={clients} #{r + 1}: app {got['app']['seconds']:.2f} s "
                f"({got['app']['never']} never), single {got['single']['seconds']:.2f} s, "
                f"bare {got['bare']['seconds']:.2f} s"
            )
        s.details[f"n{clients}"] = rounds
    return s
