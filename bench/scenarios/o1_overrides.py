"""O1 overrides: does each override of a library's private part on the HTTP path pay?

The same renames (``PATCH /api/rooms/{id}``, as P1) at concurrency c against the app
as it ships and against the app with one override switched off (bench/variant.py):
``BodyRequest`` (Litestar's body read) and the ``SuccessResponse`` bypass (Litestar's
response conversion). (A third, uvicorn's head-with-body write, did not pay and was
removed: bench/README.md.) Every
side runs through the same launcher on a database of its own (its own relay, so no
side relays another's commands), and each repeat runs them back to back in
alternating order. Figures: commands/s and the server's CPU per command, shipped ÷
switched off. Then each overridden step alone, in this process (o1_steps.py): its
CPU per request, ours ÷ the library's. An override pays where ours needs less CPU
(ratio < 1) than without it. The targets are on the step rows: end to end, a shared
machine moves the figures between runs by more than these effects (bench/README.md);
docs/architecture.md's table cites these rows.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

from bench.context import Bench, log
from bench.httpc import HttpError
from bench.procs import Server, Workers
from bench.scenarios.o1_steps import STEPS
from bench.stats import Scenario, Target

WARMUP = 20
OVERRIDES = {
    "no-body-request": "BodyRequest (Litestar: the body read in one loop)",
    "no-success-bypass": "SuccessResponse (Litestar: the response conversion skipped)",
}
STEP_ONLY = {
    "no-in-room": "_Server.in_room (python-socketio: manager.rooms read directly), 1000 sockets",
}
"""Measured as a step alone only: no end-to-end variant."""


async def _round(b: Bench, server: Server, concurrency: int, total: int) -> dict[str, float]:
    shares = Workers.split(total, concurrency)
    https = [b.http(server) for _ in range(concurrency)]
    try:
        rooms = [await b.create_room(h) for h in https]

        async def run(i: int, count: int, tag: str) -> None:
            http, path = https[i], f"/api/rooms/{rooms[i]}"
            for j in range(count):
                status, body = await http.request("PATCH", path, {"name": f"{tag} {j}"})
                if status != 200:
                    raise HttpError(f"PATCH {path}: HTTP {status}: {body[:200]!r}")

        await asyncio.gather(*(run(i, WARMUP, "warm") for i in range(concurrency)))
        cpu = server.cpu()
        started = time.perf_counter()
        await asyncio.gather(*(run(i, shares[i], "name") for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        used = server.cpu() - cpu
    finally:
        for http in https:
            await http.close()
    return {"rate": total / elapsed, "cpu_us": used / total * 1e6, "seconds": elapsed}


async def run(b: Bench) -> Scenario:
    plan = b.plan
    concurrency, total = plan.o1_concurrency, plan.o1_commands
    s = Scenario("O1", "Overrides: the HTTP path with each private-part override switched off")
    s.note = (
        f"{total} renames per round at c={concurrency}; shipped app vs the same app with one"
        " override switched off (bench/variant.py), each on its own database"
    )
    figures = {}
    for variant, what in OVERRIDES.items():
        figures[variant] = (
            s.figure(
                f"{variant}",
                f"commands/s at c={concurrency}, shipped vs without {what}",
                "cmd/s",
                f"the app without it ({variant})",
            ),
            s.figure(
                f"{variant}.cpu",
                f"server CPU per command at c={concurrency}, shipped vs without {what}",
                "µs",
                f"the app without it ({variant})",
                higher_is_better=False,
            ),
        )
    steps = {
        variant: s.figure(
            f"{variant}.step",
            f"CPU per request of the overridden step alone, {what}, vs the library's own",
            "µs",
            "the library's own step (in-process, interleaved blocks)",
            higher_is_better=False,
            target=Target("<", 1.0, text="< 1× (it pays)"),
        )
        for variant, what in (OVERRIDES | STEP_ONLY).items()
    }
    for variant, step in STEPS.items():
        pairs = await step(plan.o1_step_blocks, plan.o1_step_calls)
        steps[variant].ours.extend(a for a, _ in pairs)
        steps[variant].base.extend(b for _, b in pairs)
        s.details[f"step.{variant}"] = [[round(a, 3), round(b, 3)] for a, b in pairs]
    servers: dict[str, Server] = {}
    try:
        for variant in ("shipped", *OVERRIDES):
            dsn = await b._create_database(f"bench_o1_{uuid.uuid4().hex[:8]}")
            servers[variant] = await b.start_app(
                f"app-{variant}",
                {"DATABASE_URL": dsn},
                command=[sys.executable, "-m", "bench.variant", variant],
            )
        names = list(servers)
        rounds: list[dict[str, Any]] = []
        for r in range(plan.repeats):
            order = names if r % 2 == 0 else list(reversed(names))
            got = {v: await _round(b, servers[v], concurrency, total) for v in order}
            rounds.append(got)
            for variant, (rate, cpu) in figures.items():
                rate.ours.append(got["shipped"]["rate"])
                rate.base.append(got[variant]["rate"])
                cpu.ours.append(got["shipped"]["cpu_us"])
                cpu.base.append(got[variant]["cpu_us"])
            log(
                f"O1 #{r + 1}: "
                + ", ".join(
                    f"{v} {got[v]['rate']:.0f} cmd/s {got[v]['cpu_us']:.0f} µs" for v in names
                )
            )
        s.details["rounds"] = rounds
    finally:
        for server in servers.values():
            await b.stop(server)
    return s
