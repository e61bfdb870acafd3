"""P1 command throughput: PATCH /api/rooms/{id} vs the same append on raw asyncpg.

At concurrency c, c workers each rename their own room (c rooms: one room's
commands are serialised by its head row anyway) as fast as they can, for
``p1_commands`` commands in all. The baseline runs ``append_statement(prepare(…))``
(the store's exact single-statement append, snapshot every 100 included) for the
same events through an asyncpg pool of the app's size, with the same c
concurrent workers, in its own database. Statements are built before the clock
starts: the baseline is the database's share alone.

The app groups the appends of different rooms that wait together into one
transaction (ADR 0005); the raw baseline, as the target defines it, writes one
transaction per command. A third round, **the store alone**, runs the same
decided appends through ``EventStore.append`` with the app's group commit
(batches of up to ``GROUP``) on the raw pool, no HTTP: what the database side of
our path can do, so the table shows where the rest goes; **ours ÷ the store
alone** is then the cost of HTTP and the service at equal batching.

At c=1 the floor is one empty Litestar request plus one raw append (an HTTP
round trip and a database round trip, nothing else): our p50 against the sum
of those two p50s of the same repeat. At the levels in ``p1_mix_levels``, a
**command mix** (joins, prize updates, draws, app events: ``p1_mix.py``) runs
beside the renames, against the same raw append and against the renames.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from bench.context import SNAPSHOT_EVERY, Bench, log
from bench.httpc import HttpError
from bench.procs import Workers
from bench.scenarios.common import renames
from bench.scenarios.p1_mix import mix_round
from bench.stats import Scenario, Target, percentile
from roomcast.config import Settings
from roomcast.outbox.store import EventStore

WARMUP = 5
GROUP = Settings().append_batch
"""The app's default ROOMCAST_APPEND_BATCH, which the app under test runs with."""


def commands_at(commands: int, concurrency: int) -> int:
    """Renames per round at ``concurrency``: more at c=32, so that a round lasts about
    as long as at c=8 (~1 s of 6,000 at c=32 left one noisy moment deciding it)."""
    return commands * max(1, concurrency // 8)


async def _app_round(b: Bench, concurrency: int, total: int) -> tuple[float, list[float]]:
    shares = Workers.split(total, concurrency)
    https = [b.http() for _ in range(concurrency)]
    try:
        rooms = [await b.create_room(h) for h in https]
        for http in https:  # idle since its create: past the keep-alive timeout, maybe
            await http.close()

        async def warm(i: int) -> None:
            for j in range(WARMUP):
                await https[i].json("PATCH", f"/api/rooms/{rooms[i]}", {"name": f"warm {j}"})

        await asyncio.gather(*(warm(i) for i in range(concurrency)))
        latencies: list[float] = []

        async def run(i: int) -> None:
            http, path = https[i], f"/api/rooms/{rooms[i]}"
            for j in range(shares[i]):
                started = time.perf_counter()
                status, body = await http.request("PATCH", path, {"name": f"name {j}"})
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    raise HttpError(f"PATCH {path}: HTTP {status}: {body[:200]!r}")

        started = time.perf_counter()
        await asyncio.gather(*(run(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        for http in https:
            await http.close()
    await b.outbox_drained()
    return total / elapsed, latencies


async def _ceiling_round(b: Bench, concurrency: int, total: int) -> tuple[float, list[float]]:
    shares = Workers.split(total, concurrency)
    https = [b.http(b.ceiling) for _ in range(concurrency)]
    latencies: list[float] = []

    def run(i: int, count: int, timed: bool) -> Awaitable[None]:
        return renames(https[i], f"/api/rooms/room_{i}", count, latencies if timed else None)

    try:
        await asyncio.gather(*(run(i, WARMUP, False) for i in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(run(i, shares[i], True) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        for http in https:
            await http.close()
    return total / elapsed, latencies


async def _raw_round(b: Bench, concurrency: int, total: int) -> tuple[float, list[float]]:
    shares = Workers.split(total, concurrency)
    rooms = [await b.raw.create_room() for _ in range(concurrency)]
    plans = [b.raw.statements(rooms[i], WARMUP + shares[i]) for i in range(concurrency)]
    pool = b.raw_pool

    async def warm(i: int) -> None:
        for statement in plans[i][:WARMUP]:
            await pool.fetchval(*statement)

    await asyncio.gather(*(warm(i) for i in range(concurrency)))
    latencies: list[float] = []

    async def run(i: int) -> None:
        for statement in plans[i][WARMUP:]:
            started = time.perf_counter()
            version = await pool.fetchval(*statement)
            latencies.append(time.perf_counter() - started)
            if version is None:
                raise RuntimeError("raw append hit a version conflict")

    started = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return total / elapsed, latencies


async def _store_round(b: Bench, concurrency: int, total: int) -> tuple[float, list[float]]:
    shares = Workers.split(total, concurrency)
    rooms = [await b.raw.create_room() for _ in range(concurrency)]
    plans = [
        b.raw.prepare_updates(rooms[i], WARMUP + shares[i], chunk=1) for i in range(concurrency)
    ]
    store = EventStore(b.raw_pool, snapshot_every=SNAPSHOT_EVERY, append_batch=GROUP)

    async def warm(i: int) -> None:
        for pending in plans[i][:WARMUP]:
            await store.append(pending)

    await asyncio.gather(*(warm(i) for i in range(concurrency)))
    latencies: list[float] = []

    async def run(i: int) -> None:
        for pending in plans[i][WARMUP:]:
            started = time.perf_counter()
            await store.append(pending)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return total / elapsed, latencies


async def run(b: Bench) -> Scenario:
    plan = b.plan
    s = Scenario("P1", "Command throughput: REST API vs raw asyncpg append")
    s.note = (
        f"{plan.p1_commands} renames per round at c=1 and c=8, "
        f"{commands_at(plan.p1_commands, 32)} at c=32; c rooms at concurrency c; "
        f"pool of {plan.pool_size} connections in both; ceiling: an empty Litestar "
        "PATCH route on uvicorn, same client (bench/ceiling.py); the store alone: the same "
        "appends through EventStore.append with the app's group commit (batches of up to "
        f"{GROUP}), no HTTP, on the raw pool"
    )
    b.ceiling = await b.start_ceiling("ceiling")
    try:
        for c in plan.p1_levels:
            await _level(b, s, c)
    finally:
        await b.stop(b.ceiling)
    return s


async def _level(b: Bench, s: Scenario, c: int) -> None:
    """One concurrency level: ours, the empty route and raw asyncpg, alternating."""
    plan = b.plan
    rates = s.figure(
        f"c{c}",
        f"commands/s, concurrency {c}",
        "cmd/s",
        "raw asyncpg, same append statement",
        target=Target(">=", 1.5, text="≥ 1.5× raw asyncpg") if c == 32 else None,
    )
    p50 = s.figure(
        f"c{c}.p50",
        f"command latency p50, concurrency {c}",
        "ms",
        "raw asyncpg append",
        higher_is_better=False,
    )
    ceiling = s.figure(
        f"c{c}.ceiling",
        f"HTTP ceiling: empty PATCH route, concurrency {c}",
        "req/s",
        "raw asyncpg, same append statement",
    )
    kept = s.figure(
        f"c{c}.kept",
        f"commands/s vs the empty route's requests/s, concurrency {c}",
        "cmd/s",
        "empty Litestar PATCH route on uvicorn",
    )
    store = s.figure(
        f"c{c}.store",
        f"the store alone, grouped (no HTTP), concurrency {c}",
        "cmd/s",
        "raw asyncpg, same append statement",
    )
    vs_store = s.figure(
        f"c{c}.vs_store",
        f"commands/s vs the store alone (the cost of HTTP and the service), concurrency {c}",
        "cmd/s",
        "the store alone, same group commit, no HTTP",
    )
    floor = (
        s.figure(
            "c1.p50.floor",
            "command latency p50, concurrency 1, vs the floor",
            "ms",
            "empty Litestar route p50 + raw append p50",
            higher_is_better=False,
            target=Target("<=", 1.25, text="≤ 1.25× empty route + raw append"),
        )
        if c == 1
        else None
    )
    mixed = c in plan.p1_mix_levels
    if mixed:
        mix = s.figure(
            f"c{c}.mix",
            f"command mix (joins, prize updates, draws, app events), commands/s, concurrency {c}",
            "cmd/s",
            "raw asyncpg, same append statement (renames)",
        )
        mix_vs = s.figure(
            f"c{c}.mix.renames",
            f"command mix vs renames, commands/s, concurrency {c}",
            "cmd/s",
            "renames through the REST API",
        )
        mix_p50 = s.figure(
            f"c{c}.mix.p50",
            f"command mix latency p50, concurrency {c}",
            "ms",
            "raw asyncpg append",
            higher_is_better=False,
        )
    rounds = {
        "app": _app_round,
        "ceiling": _ceiling_round,
        "raw": _raw_round,
        "store": _store_round,
    }
    paths = ("app", "ceiling", "store", "raw", *(("mix",) if mixed else ()))
    for r in range(plan.repeats):
        order = paths if r % 2 == 0 else tuple(reversed(paths))
        got: dict[str, tuple[float, list[float]]] = {}
        for which in order:
            total = commands_at(plan.p1_commands, c)
            if which == "mix":
                # Half the renames' count (a quarter at c=1, where a round is bound by
                # latency, not rate): its setup and its slower commands fit the budget.
                rate, lat, kinds = await mix_round(b, c, total // 2 if c > 1 else total // 4)
                got[which] = (rate, lat)
                s.details.setdefault(f"c{c}.mix.kinds", []).append(kinds)
            else:
                got[which] = await rounds[which](b, c, total)
        rates.ours.append(got["app"][0])
        rates.base.append(got["raw"][0])
        ceiling.ours.append(got["ceiling"][0])
        ceiling.base.append(got["raw"][0])
        store.ours.append(got["store"][0])
        store.base.append(got["raw"][0])
        kept.ours.append(got["app"][0])
        kept.base.append(got["ceiling"][0])
        p50.ours.append(percentile(got["app"][1], 50) * 1000)
        p50.base.append(percentile(got["raw"][1], 50) * 1000)
        vs_store.ours.append(got["app"][0])
        vs_store.base.append(got["store"][0])
        if floor is not None:
            floor.ours.append(percentile(got["app"][1], 50) * 1000)
            floor.base.append(
                (percentile(got["ceiling"][1], 50) + percentile(got["raw"][1], 50)) * 1000
            )
        if mixed:
            mix.ours.append(got["mix"][0])
            mix.base.append(got["raw"][0])
            mix_vs.ours.append(got["mix"][0])
            mix_vs.base.append(got["app"][0])
            mix_p50.ours.append(percentile(got["mix"][1], 50) * 1000)
            mix_p50.base.append(percentile(got["raw"][1], 50) * 1000)
        log(
            f"P1 c={c} #{r + 1}: REST {got['app'][0]:.0f}/s, raw {got['raw'][0]:.0f}/s "
            f"({got['app'][0] / got['raw'][0]:.2f}×), empty route {got['ceiling'][0]:.0f}/s, "
            f"store alone {got['store'][0]:.0f}/s"
            + (f", mix {got['mix'][0]:.0f}/s" if mixed else "")
        )
