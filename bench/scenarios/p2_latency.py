"""P2 latency commit → client, at half the bare emit's fan-out capacity.

One room, N subscribed clients. The rate is half of what the bare emit delivered
in P3 at the same N (msgs/s ÷ N events/s ÷ 2). Ours: PATCH renames sent at that
rate, open loop (a slow answer does not delay the next send). Each client
records, per delivery, its receipt time minus the event's ``timestamp`` (taken
by the server when it decides the command: "decide → client"). The harness
records, per seq, when the command's HTTP answer arrived, which is after the
append committed; subtracting that from the decision time gives
"commit → client" (slightly flattering, by the time the answer takes to reach
the harness). Baseline: the bare server emits the same payloads at the same
rate, each stamped just before its emit (its commit → client and decide →
client are the same), to the same number of clients in the same client
processes. All clocks are this machine's wall clock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import msgspec

from bench.context import Bench, log
from bench.httpc import Http, HttpError
from bench.scenarios.common import arm, connect_clients, wait
from bench.scenarios.p3_fanout import bare_capacity
from bench.stats import Scenario, Target, percentile

SENDERS = 8


class _Answer(msgspec.Struct):
    version: int
    events: list[dict[str, Any]]


class _Reply(msgspec.Struct):
    data: _Answer


_reply = msgspec.json.Decoder(_Reply)


async def _paced_commands(
    b: Bench, room: str, count: int, rate: float
) -> tuple[float, dict[int, float]]:
    """Send ``count`` renames at ``rate``/s.

    Returns the worst lateness of a send (s) and, per seq, the time from the
    event's ``timestamp`` to its HTTP answer arriving (s).
    """
    idle: asyncio.Queue[Http] = asyncio.Queue()
    for _ in range(SENDERS):
        idle.put_nowait(b.http())
    path = f"/api/rooms/{room}"
    late = 0.0
    answered: dict[int, float] = {}

    async def send(i: int) -> None:
        http = await idle.get()
        try:
            status, body = await http.request("PATCH", path, {"name": f"paced {i}"})
            now = time.time()
            if status != 200:
                raise HttpError(f"PATCH {path}: HTTP {status}: {body[:200]!r}")
            data = _reply.decode(body).data
            stamp = datetime.fromisoformat(data.events[0]["payload"]["timestamp"])
            answered[data.version] = now - stamp.timestamp()
        finally:
            idle.put_nowait(http)

    tasks = []
    started = time.perf_counter()
    try:
        for i in range(count):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        while not idle.empty():
            await idle.get_nowait().close()
    return late, answered


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
    }


def _timeout(seconds: float) -> float:
    return seconds + 60


async def app_round(b: Bench, clients: int, count: int, rate: float) -> dict[str, Any]:
    room = await b.create_room()
    head = await connect_clients(b, b.app, clients, room)
    await arm(b, head + count, record=True)
    late, answered = await _paced_commands(b, room, count, rate)
    result = await wait(b, _timeout(count / rate), latencies=True)
    result["send_late"] = late
    result["commit_latencies"] = [
        lat - answered.get(seq, 0.0)
        for lat, seq in zip(result["latencies"], result["latency_seqs"], strict=True)
    ]
    queued = sorted(answered.values())
    result["decide_to_answer_ms"] = {
        "p50": percentile(queued, 50) * 1000,
        "p99": percentile(queued, 99) * 1000,
    }
    await b.workers.forget()
    await b.outbox_drained()
    return result


async def bare_round(b: Bench, clients: int, count: int, rate: float) -> dict[str, Any]:
    head = await connect_clients(b, b.bare, clients, "bench")
    await arm(b, head + count, record=True)
    emitted = await b.emit_bare(count, rate)
    result = await wait(b, _timeout(count / rate), latencies=True)
    result["send_late"] = max(0.0, emitted["t_end"] - emitted["t_start"] - (count - 1) / rate)
    result["commit_latencies"] = result["latencies"]  # stamped just before each emit
    await b.workers.forget()
    return result


async def run(b: Bench) -> Scenario:
    plan = b.plan
    clients = plan.p2_clients
    capacity = await bare_capacity(b, clients)
    rate = capacity / clients / 2
    count = max(10, round(rate * plan.p2_seconds))
    s = Scenario("P2", "Latency commit → client at half the bare emit's capacity")
    s.note = (
        f"1 room × {clients} clients; bare capacity {capacity:.0f} msg/s → "
        f"{rate:.1f} events/s for {count / rate:.1f} s ({count} events)"
    )
    s.details.update(capacity=capacity, rate=rate, events=count, rounds=[])
    figs = {
        ("commit", "p50"): s.figure(
            "p50", "commit → client p50", "ms", "bare emit", higher_is_better=False
        ),
        ("commit", "p99"): s.figure(
            "p99",
            "commit → client p99",
            "ms",
            "bare emit",
            higher_is_better=False,
            target=Target("<=", 1.2, text="≤ 1.2× bare emit p99"),
        ),
        ("commit", "max"): s.figure(
            "max", "commit → client max", "ms", "bare emit", higher_is_better=False
        ),
        ("decide", "p50"): s.figure(
            "decide.p50",
            "decide → client p50 (incl. the room's command queue)",
            "ms",
            "bare emit",
            higher_is_better=False,
        ),
        ("decide", "p99"): s.figure(
            "decide.p99",
            "decide → client p99 (incl. the room's command queue)",
            "ms",
            "bare emit",
            higher_is_better=False,
        ),
    }
    for r in range(plan.repeats):
        order = ("app", "bare") if r % 2 == 0 else ("bare", "app")
        got = {}
        for which in order:
            runner = app_round if which == "app" else bare_round
            got[which] = await runner(b, clients, count, rate)
        for which in order:
            res = got[which]
            res["stats"] = {
                kind: _stats([x * 1000 for x in res.pop(field)])
                for kind, field in (("decide", "latencies"), ("commit", "commit_latencies"))
            }
            res["stats"]["samples"] = len(res.pop("latency_seqs"))
            res["stats"]["expected"] = clients * count
            s.details["rounds"].append({"path": which, **res})
        for (kind, stat), fig in figs.items():
            fig.ours.append(got["app"]["stats"][kind][stat])
            fig.base.append(got["bare"]["stats"][kind][stat])
        app, bare = got["app"]["stats"]["commit"], got["bare"]["stats"]["commit"]
        log(
            f"P2 #{r + 1}: commit → client p50/p99/max app {app['p50']:.1f}/{app['p99']:.1f}/"
            f"{app['max']:.1f} ms, bare {bare['p50']:.1f}/{bare['p99']:.1f}/{bare['max']:.1f} ms;"
            f" decide → client p50 app {got['app']['stats']['decide']['p50']:.1f} ms"
        )
    short = [x for x in s.details["rounds"] if x["stats"]["samples"] != x["stats"]["expected"]]
    if short:
        figs["commit", "p99"].note = f"{len(short)} round(s) with missing deliveries: see details"
    return s
