"""P2 latency commit → client, at half the bare emit's fan-out capacity.

One room, N subscribed clients. The rate is half of what the bare emit delivered
in P3 at the same N (msgs/s ÷ N events/s ÷ 2). Ours: PATCH renames sent at that
rate, open loop (a slow answer does not delay the next send). Each client
records, per delivery, its receipt time minus the event's ``timestamp`` (taken
by the server when it decides the command: "decide → client").

**commit → client** starts at the commit itself: PostgreSQL records each
transaction's commit time (``track_commit_timestamp``, which the harness turns
on in its embedded server), and after the round the harness reads
``pg_xact_commit_timestamp(xmin)`` of every event row of the room, beside its
``recorded_at`` (= the payload's ``timestamp``); receipt − commit is then
receipt − timestamp − (commit − timestamp). The commit time is taken in the
commit itself, before the transaction becomes visible, so it neither flatters
(as the HTTP answer, which follows the commit, did) nor penalises us. NOTIFY
cannot serve: the app's is coalesced (one per 50 ms under load), and
``recorded_at`` is the decision time. When the server does not record commit
times (a ``DATABASE_URL`` server with the setting off), the HTTP answer is used
and a note says so.

Baselines, the same clients, the same rate, the same payloads built before the
clock starts: the bare python-socketio server and the Node.js socket.io peer.
Their "commit" is the moment each emit starts (they answer it per event); the
target is against the Node.js peer. All clocks are this machine's wall clock.

Where the time goes: per round, ``per_event_ms`` splits it into commit → the
event's first client and first → last client (the fan-out's spread), and
``cpu_ms_per_event`` gives the CPU the server process and the client processes
spent per event while it ran (bench/README.md, P2: the spread is the server's
per-socket writes or, for the Node peer, the clients).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import msgspec

from bench.context import Bench, log
from bench.httpc import Http, HttpError
from bench.procs import Server, cpu_seconds
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


def _per_event(latencies: list[float], seqs: list[int]) -> dict[str, dict[str, float]]:
    """Where the latency goes, per event: commit → its first client, and first → last
    client (the fan-out's own spread), p50 and p99 over events (ms)."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for lat, seq in zip(latencies, seqs, strict=True):
        if lat < first.get(seq, float("inf")):
            first[seq] = lat
        if lat > last.get(seq, -float("inf")):
            last[seq] = lat
    firsts = [x * 1000 for x in first.values()]
    spreads = [(last[seq] - first[seq]) * 1000 for seq in first]
    return {
        "to_first_client": {"p50": percentile(firsts, 50), "p99": percentile(firsts, 99)},
        "first_to_last_client": {"p50": percentile(spreads, 50), "p99": percentile(spreads, 99)},
    }


class _Cpu:
    """CPU seconds of the server process and of the client processes from now on."""

    def __init__(self, server: Server, clients: list[int]) -> None:
        self._server, self._clients = server, clients
        self._start = self._read()

    def _read(self) -> tuple[float, float]:
        return self._server.cpu(), sum(cpu_seconds(pid) for pid in self._clients)

    def per_event(self, events: int) -> dict[str, float]:
        """ms of CPU per event (one event = one message to each of the N clients):
        the server's (ours: the app process, its relay included, PostgreSQL's
        backends not) and the clients' (every worker together)."""
        server, clients = self._read()
        return {
            "server": (server - self._start[0]) * 1000 / events,
            "clients": (clients - self._start[1]) * 1000 / events,
        }


def _cpu(b: Bench, server: Server) -> _Cpu:
    return _Cpu(server, [w.proc.pid for w in b.workers.all])


def _timeout(seconds: float) -> float:
    return seconds + 60


COMMITTED = """
    SELECT seq,
           extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 AS committed,
           extract(epoch FROM recorded_at)::float8 AS stamp
    FROM events
    WHERE stream_id = $1 AND seq > $2
"""
"""Each event's commit time and its payload's ``timestamp`` (``recorded_at``)."""


async def commit_offsets(b: Bench, room: str, after: int) -> dict[int, float]:
    """Per seq: commit time − the payload's ``timestamp`` (s)."""
    rows = await b.pool.fetch(COMMITTED, room, after)
    return {
        row["seq"]: row["committed"] - row["stamp"] for row in rows if row["committed"] is not None
    }


async def app_round(b: Bench, clients: int, count: int, rate: float) -> dict[str, Any]:
    room = await b.create_room()
    head = await connect_clients(b, b.app, clients, room)
    await arm(b, head + count, record=True)
    cpu = _cpu(b, b.app)
    late, answered = await _paced_commands(b, room, count, rate)
    result = await wait(b, _timeout(count / rate), latencies=True)
    result["cpu_ms_per_event"] = cpu.per_event(count)
    result["send_late"] = late
    committed = await commit_offsets(b, room, head) if b.commit_timestamps else {}
    result["commit_clock"] = "commit" if committed else "http_answer"
    offsets = committed or answered
    result["commit_latencies"] = [
        lat - offsets.get(seq, 0.0)
        for lat, seq in zip(result["latencies"], result["latency_seqs"], strict=True)
    ]
    answer_after = sorted(
        answered[seq] - committed[seq] for seq in committed.keys() & answered.keys()
    )
    if answer_after:
        result["commit_to_answer_ms"] = {
            "p50": percentile(answer_after, 50) * 1000,
            "p99": percentile(answer_after, 99) * 1000,
        }
    queued = sorted(answered.values())
    result["decide_to_answer_ms"] = {
        "p50": percentile(queued, 50) * 1000,
        "p99": percentile(queued, 99) * 1000,
    }
    await b.workers.forget()
    await b.outbox_drained()
    return result


async def bare_round(
    b: Bench, clients: int, count: int, rate: float, server: Server | None = None
) -> dict[str, Any]:
    """The bare server's round, or the Node peer's (``server``)."""
    server = server or b.bare
    head = await connect_clients(b, server, clients, "bench")
    await arm(b, head + count, record=True)
    cpu = _cpu(b, server)
    emitted = await b.emit_bare(count, rate, server)
    result = await wait(b, _timeout(count / rate), latencies=True)
    result["cpu_ms_per_event"] = cpu.per_event(count)
    result["send_late"] = max(0.0, emitted["t_end"] - emitted["t_start"] - (count - 1) / rate)
    first, offsets = emitted["first_seq"], emitted["offsets"]
    result["commit_clock"] = "emit"
    result["commit_latencies"] = [
        lat - offsets[seq - first] if 0 <= seq - first < len(offsets) else lat
        for lat, seq in zip(result["latencies"], result["latency_seqs"], strict=True)
    ]
    # Its payloads were built before the round: the emit is its decision and commit.
    result["latencies"] = result["commit_latencies"]
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
        f"{rate:.1f} events/s for {count / rate:.1f} s ({count} events); commit → client "
        + (
            "from PostgreSQL's commit timestamp"
            if b.commit_timestamps
            else "from the HTTP answer (track_commit_timestamp is off: flatters us)"
        )
    )
    if b.node is None:
        s.note += f"; {b.node_peer.note}"
    s.details.update(capacity=capacity, rate=rate, events=count, rounds=[])
    bare, node = "bare emit", "Node.js socket.io 4.8 broadcast"
    lower = {"higher_is_better": False}
    figs = {
        ("bare", "commit", "p50"): s.figure("p50", "commit → client p50", "ms", bare, **lower),
        ("bare", "commit", "p99"): s.figure(
            "p99",
            "commit → client p99",
            "ms",
            bare,
            target=Target("<=", 1.2, text="≤ 1.2× bare emit p99"),
            **lower,
        ),
        ("bare", "commit", "max"): s.figure("max", "commit → client max", "ms", bare, **lower),
        ("node", "commit", "p50"): s.figure(
            "node.p50", "commit → client p50, vs the Node.js peer", "ms", node, **lower
        ),
        ("node", "commit", "p99"): s.figure(
            "node.p99",
            "commit → client p99, vs the Node.js peer",
            "ms",
            node,
            target=Target("<=", 1.0, text="≤ 1.0× Node.js peer p99"),
            **lower,
        ),
        ("node", "commit", "max"): s.figure(
            "node.max", "commit → client max, vs the Node.js peer", "ms", node, **lower
        ),
        ("bare", "decide", "p50"): s.figure(
            "decide.p50",
            "decide → client p50 (incl. the room's command queue)",
            "ms",
            bare,
            **lower,
        ),
        ("bare", "decide", "p99"): s.figure(
            "decide.p99",
            "decide → client p99 (incl. the room's command queue)",
            "ms",
            bare,
            **lower,
        ),
    }
    paths = ("app", "bare", *(("node",) if b.node is not None else ()))
    for r in range(plan.repeats):
        order = paths if r % 2 == 0 else tuple(reversed(paths))
        got = {}
        for which in order:
            if which == "app":
                got[which] = await app_round(b, clients, count, rate)
            else:
                server = b.node if which == "node" else b.bare
                got[which] = await bare_round(b, clients, count, rate, server)
        for which in order:
            res = got[which]
            res["per_event_ms"] = _per_event(res["commit_latencies"], res["latency_seqs"])
            res["stats"] = {
                kind: _stats([x * 1000 for x in res.pop(field)])
                for kind, field in (("decide", "latencies"), ("commit", "commit_latencies"))
            }
            res["stats"]["samples"] = len(res.pop("latency_seqs"))
            res["stats"]["expected"] = clients * count
            s.details["rounds"].append({"path": which, **res})
        for (peer, kind, stat), fig in figs.items():
            if peer in got:
                fig.ours.append(got["app"]["stats"][kind][stat])
                fig.base.append(got[peer]["stats"][kind][stat])
        app, base = got["app"]["stats"]["commit"], got["bare"]["stats"]["commit"]
        line = (
            f"P2 #{r + 1}: commit → client p50/p99/max app {app['p50']:.1f}/{app['p99']:.1f}/"
            f"{app['max']:.1f} ms, bare {base['p50']:.1f}/{base['p99']:.1f}/{base['max']:.1f} ms"
        )
        if "node" in got:
            peer = got["node"]["stats"]["commit"]
            line += f", Node.js {peer['p50']:.1f}/{peer['p99']:.1f}/{peer['max']:.1f} ms"
        cpu = ", ".join(
            f"{w} {got[w]['cpu_ms_per_event']['server']:.1f}" for w in order if w in got
        )
        log(
            line + f"; decide → client p50 app {got['app']['stats']['decide']['p50']:.1f} ms"
            f"; server CPU ms/event {cpu}; clients "
            f"{got['app']['cpu_ms_per_event']['clients']:.1f}"
        )
    short = [x for x in s.details["rounds"] if x["stats"]["samples"] != x["stats"]["expected"]]
    if short:
        figs[
            "bare", "commit", "p99"
        ].note = f"{len(short)} round(s) with missing deliveries: see details"
    if b.node is None:
        for (peer, _, _), fig in figs.items():
            if peer == "node":
                fig.note = b.node_peer.note
    return s
