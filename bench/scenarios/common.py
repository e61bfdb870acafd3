"""Driving the client workers: connect and subscribe, arm a target seq, wait for it."""

from __future__ import annotations

import time
from typing import Any

from bench.context import Bench
from bench.httpc import Http, HttpError
from bench.procs import Server, Worker


async def connect_clients(
    b: Bench,
    server: Server,
    n: int,
    room: str | None,
    *,
    last_seq: int | None = None,
    workers: list[Worker] | None = None,
    concurrency: int = 50,
    batch: bool = False,
    recovery: bool = False,
    transport: str = "socketio",
) -> int:
    """``n`` clients on ``server`` (subscribed to ``room`` if given); the room's head seq.

    ``batch``: subscribe with ``batch: true`` (``room:events`` frames; the bare
    server and the Node peer ignore the flag and send one message per event).
    ``recovery``: reconnect later with Socket.IO's connection state recovery.
    ``transport`` "sse": Server-Sent Events streams of ``room`` instead (``last_seq`` as
    their Last-Event-ID); they learn no head, so the result is 0 for them."""
    chosen = workers or b.workers.all
    replies = await b.workers.connect(
        chosen,
        server.url,
        b.token(),
        n,
        room=room,
        last_seq=last_seq,
        concurrency=concurrency,
        within=120,
        batch=batch,
        recovery=recovery,
        transport=transport,
    )
    failed = sum(r["failed"] for r in replies)
    if failed:
        errors = [e for r in replies for e in r["errors"]][:3]
        raise RuntimeError(f"{failed} of {n} clients could not connect to {server.name}: {errors}")
    heads = [r["head"] for r in replies if r["head"] is not None]
    return max(heads) if heads else 0


async def arm(b: Bench, target: int, *, record: bool = False) -> None:
    await b.workers.each("arm", target=target, record=record)


async def wait(b: Bench, within: float, *, latencies: bool = False) -> dict[str, Any]:
    """Every worker's clients until they reach the armed seq; merged."""
    replies = await b.workers.each("wait", rpc_timeout=within + 60, within=within)
    if latencies:
        # Asked for separately, once every worker has stopped waiting.
        replies = await b.workers.each("wait", rpc_timeout=120, within=0, latencies=True)
    reached = [r for r in replies if r["t_last"] is not None]
    merged: dict[str, Any] = {
        "clients": sum(r["clients"] for r in replies),
        "caught_up": sum(r["caught_up"] for r in replies),
        "t_first": min((r["t_first"] for r in reached), default=None),
        "t_last": max((r["t_last"] for r in reached), default=None),
        "received": sum(r["received"] for r in replies),
        "dups": sum(r["dups"] for r in replies),
        "gaps": sum(r["gaps"] for r in replies),
        "dropped": sum(r["dropped"] for r in replies),
        "recovered": sum(r.get("recovered", 0) for r in replies),
        "errors": [e for r in replies for e in r["errors"]][:3],
        "t_wait_end": time.time(),
    }
    if latencies:
        merged["latencies"] = [x for r in replies for x in r.get("latencies", [])]
        merged["latency_seqs"] = [x for r in replies for x in r.get("latency_seqs", [])]
    return merged


def finished_at(result: dict[str, Any]) -> float:
    """When the last client reached the target (or when waiting gave up)."""
    if result["caught_up"] == result["clients"] and result["t_last"] is not None:
        return float(result["t_last"])
    return float(result["t_wait_end"])


async def renames(http: Http, path: str, count: int, latencies: list[float] | None) -> None:
    """``count`` PATCHes of ``path`` one after another, each timed into ``latencies``
    (unless None); any answer but 200 fails the round."""
    for j in range(count):
        started = time.perf_counter()
        status, body = await http.request("PATCH", path, {"name": f"name {j}"})
        if latencies is not None:
            latencies.append(time.perf_counter() - started)
        if status != 200:
            raise HttpError(f"PATCH {path}: HTTP {status}: {body[:200]!r}")
