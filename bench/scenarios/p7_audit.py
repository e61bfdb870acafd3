"""P7 audit verify: events/s of ``roomcast audit verify`` vs a raw read of the same rows.

``roomcast audit verify`` runs on one room as a subprocess (its start-up time,
measured with ``roomcast --version``, is subtracted) and is compared with a raw
asyncpg read of the room's rows. The room is P8's longest stream. The command
exiting non-zero (``--help`` or the verification itself) is a failure of the
scenario, with its output: the CLI is part of the product.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from bench.context import Bench, log
from bench.procs import ROOT
from bench.scenarios.p4_replay import build_room, raw_read
from bench.stats import Scenario, Target


async def _roomcast(*args: str, env: dict[str, str]) -> tuple[int, str, float]:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "roomcast",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 600)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace"), time.perf_counter() - started


async def run(b: Bench) -> Scenario:
    s = Scenario("P7", "Audit verify: events/s vs raw read")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    env["DATABASE_URL"] = b.app_dsn
    code, usage, _ = await _roomcast("audit", "verify", "--help", env=env)
    if code != 0:
        raise RuntimeError(
            f"`roomcast audit verify --help` failed (exit {code}): {usage.strip()[-600:]}"
        )
    # The longest stream P8 built (verifying must take long enough that subtracting
    # the CLI's start-up time leaves a meaningful figure), or a new one as long.
    length = b.plan.p8_lengths[-1]
    room, _ = b.results.get("rooms", {}).get(length) or await build_room(b, length - 1)
    head = await b.streams.store.head(room)
    args = ["audit", "verify", *(["--room", room] if "--room" in usage else [room])]
    fig = s.figure(
        f"e{length}",
        f"verified events/s, {head} events",
        "events/s",
        "raw asyncpg read",
        target=Target(">=", 0.5, text="≥ 0.5× raw read"),
    )
    for r in range(b.plan.repeats):
        _, _, startup = await _roomcast("--version", env=env)
        code, out, elapsed = await _roomcast(*args, env=env)
        if code != 0:
            raise RuntimeError(
                f"`roomcast {' '.join(args)}` failed (exit {code}): {out.strip()[-600:]}"
            )
        raw = await raw_read(b, room, head, head)
        fig.ours.append(head / max(elapsed - startup, 1e-3))
        fig.base.append(raw["rate"])
        log(f"P7 #{r + 1}: verify {fig.ours[-1]:.0f} events/s, raw {raw['rate']:.0f} rows/s")
    s.note = f"`roomcast {' '.join(args[:2])}` on one room; CLI start-up time subtracted"
    return s
