"""P8 load growth: P1 and P4 on streams of 1k, 10k and 100k events.

One room per length, filled in bulk through the store (snapshots every 100
events, as the app writes them) and relayed before measuring. Per length:
command latency p50 of sequential PATCH renames (concurrency 1, after a
warm-up that loads the room into the app's cache), and replay events/s of one
client ``p8_replay`` events behind, from PostgreSQL: on a second app with the
replay memory off (``ROOMCAST_REPLAY_CACHE_EVENTS=0``), since a replay from
memory does not touch the stream's history at all. The baseline of each figure is the same
measurement on the shortest stream, in the same round. The lengths take turns
in slices of ``SLICE`` commands, so a noisy moment on the machine hits them all.

**Cold**: a room the node has not seen. Per sample a fresh app process (default
settings), warmed on a room of its own (a few renames and a replay, so the first
request's one-off costs are paid), then, for each length in turn, a replay of
the last ``p8_replay`` events (from PostgreSQL: the fresh node holds nothing of
the room in memory) and afterwards one command on each room, which loads the
room's state from its latest snapshot plus the events after it (a subscribe
reads only the head, so the replays leave the state cache cold). One sample per
length and process: the figure is the median of ``p8_cold_samples`` processes
per repeat, against the same on the 1k stream.
"""

from __future__ import annotations

import statistics
import time

from bench.context import Bench, log
from bench.httpc import HttpError
from bench.procs import Server
from bench.scenarios.p4_replay import app_replay, build_room
from bench.stats import Figure, Scenario, Target, percentile

WARMUP = 10
SLICE = 20


async def _latency_p50(b: Bench, rooms: dict[int, str], count: int) -> dict[int, float]:
    """Command latency p50 (ms) per length; the lengths take turns, SLICE commands each."""
    latencies: dict[int, list[float]] = {n: [] for n in rooms}
    https = {n: b.http() for n in rooms}
    try:
        for n, room in rooms.items():
            for j in range(WARMUP):
                await https[n].json("PATCH", f"/api/rooms/{room}", {"name": f"warm {j}"})
        done = 0
        while done < count:
            take = min(SLICE, count - done)
            for n, room in rooms.items():
                path = f"/api/rooms/{room}"
                for j in range(done, done + take):
                    started = time.perf_counter()
                    status, body = await https[n].request("PATCH", path, {"name": f"grow {j}"})
                    latencies[n].append(time.perf_counter() - started)
                    if status != 200:
                        raise HttpError(f"PATCH {path}: HTTP {status}: {body[:200]!r}")
            done += take
    finally:
        for http in https.values():
            await http.close()
    await b.outbox_drained()
    return {n: percentile(xs, 50) * 1000 for n, xs in latencies.items()}


async def run(b: Bench) -> Scenario:
    plan = b.plan
    lengths = plan.p8_lengths
    s = Scenario("P8", "Load growth: command latency and replay vs stream length")
    rooms: dict[int, tuple[str, int]] = {}
    for length in lengths:
        started = time.perf_counter()
        rooms[length] = await build_room(b, length - 1)
        b.results.setdefault("rooms", {})[length] = rooms[length]
        log(f"P8 stream of {length} events built in {time.perf_counter() - started:.1f} s")
    shortest, longest = lengths[0], lengths[-1]
    s.note = (
        f"{plan.p8_commands} sequential renames per length; replay {plan.p8_replay} behind; "
        f"baseline: the {shortest}-event stream"
    )
    lat = {
        n: s.figure(
            f"latency.{n}",
            f"command latency p50 at {n} events",
            "ms",
            f"same at {shortest} events",
            higher_is_better=False,
            target=Target("<=", 1.2, text=f"≤ 1.2× at {shortest}") if n == longest else None,
        )
        for n in lengths[1:]
    }
    rep = {
        n: s.figure(
            f"replay.{n}",
            f"replay events/s at {n} events (from PostgreSQL)",
            "events/s",
            f"same at {shortest} events",
            target=Target(">=", 1 / 1.2, text=f"≥ 1/1.2× at {shortest}") if n == longest else None,
        )
        for n in lengths[1:]
    }
    db_only = await b.start_app("app-db-replay", {"ROOMCAST_REPLAY_CACHE_EVENTS": "0"})
    try:
        await _rounds(b, rooms, lat, rep, db_only, s)
    finally:
        await b.stop(db_only)
    await _cold(b, rooms, s)
    return s


async def _cold_sample(
    b: Bench, rooms: dict[int, tuple[str, int]], order: tuple[int, ...], name: str
) -> tuple[dict[int, float], dict[int, float]]:
    """One fresh process: per length, a cold replay's events/s and a cold command (ms)."""
    app = await b.start_app(name)
    try:
        async with b.http(app) as http:
            warm = await b.create_room(http, name="Cold warm-up")
            for j in range(WARMUP):
                await http.json("PATCH", f"/api/rooms/{warm}", {"name": f"warm {j}"})
            await app_replay(b, warm, WARMUP + 1, WARMUP, server=app)
            replay: dict[int, float] = {}
            for n in order:
                room, _ = rooms[n]
                head = await b.streams.store.head(room)
                behind = min(b.plan.p8_replay, head - 1)
                replay[n] = (await app_replay(b, room, head, behind, server=app))["rate"]
            latency: dict[int, float] = {}
            for n in order:
                path = f"/api/rooms/{rooms[n][0]}"
                started = time.perf_counter()
                status, body = await http.request("PATCH", path, {"name": f"cold {name}"})
                latency[n] = (time.perf_counter() - started) * 1000
                if status != 200:
                    raise HttpError(f"PATCH {path}: HTTP {status}: {body[:200]!r}")
    finally:
        await b.stop(app)
    await b.outbox_drained()
    return latency, replay


async def _cold(b: Bench, rooms: dict[int, tuple[str, int]], s: Scenario) -> None:
    plan = b.plan
    lengths = plan.p8_lengths
    shortest, longest = lengths[0], lengths[-1]
    lat = {
        n: s.figure(
            f"cold.latency.{n}",
            f"cold command latency (room not in the node's cache) at {n} events",
            "ms",
            f"same at {shortest} events",
            higher_is_better=False,
            target=Target("<=", 1.2, text=f"≤ 1.2× at {shortest}") if n == longest else None,
        )
        for n in lengths[1:]
    }
    rep = {
        n: s.figure(
            f"cold.replay.{n}",
            f"cold replay events/s (a fresh node) at {n} events",
            "events/s",
            f"same at {shortest} events",
            target=Target(">=", 1 / 1.2, text=f"≥ 1/1.2× at {shortest}") if n == longest else None,
        )
        for n in lengths[1:]
    }
    raw: dict[str, dict[int, list[float]]] = {"latency_ms": {}, "replay_rate": {}}
    for r in range(plan.repeats):
        order = lengths if r % 2 == 0 else tuple(reversed(lengths))
        samples = [
            await _cold_sample(b, rooms, order, f"p8-cold-{r}-{k}")
            for k in range(plan.p8_cold_samples)
        ]
        p50 = {n: statistics.median(x[0][n] for x in samples) for n in lengths}
        rate = {n: statistics.median(x[1][n] for x in samples) for n in lengths}
        for n in lengths:
            raw["latency_ms"].setdefault(n, []).extend(x[0][n] for x in samples)
            raw["replay_rate"].setdefault(n, []).extend(x[1][n] for x in samples)
        for n in lengths[1:]:
            lat[n].ours.append(p50[n])
            lat[n].base.append(p50[shortest])
            rep[n].ours.append(rate[n])
            rep[n].base.append(rate[shortest])
        log(
            f"P8 cold #{r + 1}: command "
            + ", ".join(f"{n}: {p50[n]:.2f} ms" for n in lengths)
            + "; replay "
            + ", ".join(f"{n}: {rate[n]:.0f}/s" for n in lengths)
        )
    s.details["cold"] = raw


async def _rounds(
    b: Bench,
    rooms: dict[int, tuple[str, int]],
    lat: dict[int, Figure],
    rep: dict[int, Figure],
    db_only: Server,
    s: Scenario,
) -> None:
    plan = b.plan
    lengths = plan.p8_lengths
    shortest = lengths[0]
    raw: dict[str, dict[int, list[float]]] = {"latency_ms": {}, "replay_rate": {}}
    for r in range(plan.repeats):
        order = lengths if r % 2 == 0 else tuple(reversed(lengths))
        p50 = await _latency_p50(b, {n: rooms[n][0] for n in order}, plan.p8_commands)
        rate: dict[int, float] = {}
        for n in order:
            room, _ = rooms[n]
            head = await b.streams.store.head(room)
            behind = min(plan.p8_replay, head - 1)
            rate[n] = (await app_replay(b, room, head, behind, server=db_only))["rate"]
            raw["latency_ms"].setdefault(n, []).append(p50[n])
            raw["replay_rate"].setdefault(n, []).append(rate[n])
        for n in lengths[1:]:
            lat[n].ours.append(p50[n])
            lat[n].base.append(p50[shortest])
            rep[n].ours.append(rate[n])
            rep[n].base.append(rate[shortest])
        log(
            f"P8 #{r + 1}: p50 "
            + ", ".join(f"{n}: {p50[n]:.2f} ms" for n in lengths)
            + "; replay "
            + ", ".join(f"{n}: {rate[n]:.0f}/s" for n in lengths)
        )
    s.details.update(raw)
