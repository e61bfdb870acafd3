"""P1's command mix: joins, prize updates, draws and app events, instead of renames only.

Each of the c workers has its own active room with one prize (a large quantity)
and 20 participants, set up before the clock starts, and sends, in turn, a join
(a new user each time, with their own token), a prize update and a draw: a
join adds a participant and a draw takes one (a winner is no longer
eligible), so the room stays drawable. An app event (an app token with
``realtime:publish``, ``X-App-Id``, one app per worker) replaces the next
command whenever ``APP_EVERY`` seconds have passed since the worker's last one
(and at most one command in ``APP_SHARE``): seed 003 allows an app 10 events
per second per room, and the product enforces it, so app events stay under
that at any rate. Tokens are minted before the
clock starts. Every command must succeed (201/200), or the round fails.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.context import SECRET, Bench
from bench.httpc import Http, HttpError
from bench.procs import Workers
from roomcast.tokens import mint

__all__ = ["mix_round"]

APP_EVERY = 0.15
"""Seconds between one worker's app events (≤ 6.7/s per room, under seed 003's 10)."""
APP_SHARE = 4
"""At most one command in this many is an app event."""
PARTICIPANTS = 20
WARMUP = 6


def _token(sub: str, **extra: Any) -> str:
    return mint(
        secret=SECRET,
        sub=sub,
        name=sub,
        issuer="roomcast",
        audience="roomcast",
        ttl_seconds=24 * 3600,
        extra=extra or None,
    )


@dataclass
class _Room:
    http: Http
    room: str
    prize: str
    users: list[str]
    app: str
    app_token: str
    app_headers: str
    kinds: Counter[str] = field(default_factory=Counter)


async def _setup(b: Bench, i: int, joins: int) -> _Room:
    http = b.http()
    room = await b.create_room(http, name=f"Mix room {i}")
    prize = await http.json(
        "POST", f"/api/rooms/{room}/prizes", {"name": "Prize", "quantity": 1_000_000}, expect=201
    )
    await http.json("POST", f"/api/rooms/{room}/status", {"status": "active"})
    tag = f"{room[-8:]}_{i}"
    users = [_token(f"usr_mix_{tag}_{k}") for k in range(PARTICIPANTS + joins)]
    for token in users[:PARTICIPANTS]:
        await http.json("POST", f"/api/rooms/{room}/participants", None, expect=201, token=token)
    app = f"benchapp{i}"
    return _Room(
        http=http,
        room=room,
        prize=str(prize["data"]["prize"]["id"]),
        users=users[PARTICIPANTS:],
        app=app,
        app_token=_token(f"app_{app}", app=app, permissions=["realtime:publish"]),
        app_headers=f"X-App-Id: {app}\r\n",
    )


async def _command(r: _Room, j: int, k: int, app_due: bool) -> tuple[str, int, bytes]:
    """Command ``j`` of the worker: an app event, else kind ``k % 3`` (``k`` counts only
    these, so joins and draws stay level whatever the app events displace)."""
    base = f"/api/rooms/{r.room}"
    if app_due:
        kind = "app event"
        status, body = await r.http.request(
            "POST",
            f"{base}/events",
            {"event": f"{r.app}:tick", "data": {"n": j}},
            token=r.app_token,
            headers=r.app_headers,
        )
    elif k % 3 == 0:
        kind = "join"
        status, body = await r.http.request(
            "POST", f"{base}/participants", None, token=r.users.pop()
        )
    elif k % 3 == 1:
        kind = "prize update"
        status, body = await r.http.request(
            "PATCH", f"{base}/prizes/{r.prize}", {"name": f"Prize {j}"}
        )
    else:
        kind = "draw"
        status, body = await r.http.request("POST", f"{base}/draws", {"prizeId": r.prize})
    return kind, status, body


async def mix_round(
    b: Bench, concurrency: int, total: int
) -> tuple[float, list[float], dict[str, int]]:
    """Commands/s, latencies (s) and the count of each kind, at ``concurrency``."""
    shares = Workers.split(total, concurrency)
    rooms = [await _setup(b, i, WARMUP + shares[i]) for i in range(concurrency)]
    for r in rooms:
        # Set up one after the other, the first ones' keep-alive connections may sit
        # idle past uvicorn's keep-alive timeout (5 s) on a loaded machine: reopen.
        await r.http.close()
    latencies: list[float] = []

    async def run(r: _Room, count: int, timed: bool, start: int) -> None:
        last_app = -float("inf")
        others = 0  # commands since the last app event
        k = 0
        for j in range(start, start + count):
            now = time.perf_counter()
            # At most one app event in APP_SHARE commands: a slow machine must not
            # turn the mix into app events only.
            due = now - last_app >= APP_EVERY and others >= APP_SHARE - 1
            if due:
                last_app, others = now, 0
            else:
                others += 1
            kind, status, body = await _command(r, j, k, due)
            k += 0 if due else 1
            if timed:
                latencies.append(time.perf_counter() - now)
                r.kinds[kind] += 1
            if status not in (200, 201):
                raise HttpError(f"mix {kind} in {r.room}: HTTP {status}: {body[:300]!r}")

    try:
        await asyncio.gather(*(run(r, WARMUP, False, 0) for r in rooms))
        started = time.perf_counter()
        await asyncio.gather(*(run(r, shares[i], True, WARMUP) for i, r in enumerate(rooms)))
        elapsed = time.perf_counter() - started
    finally:
        for r in rooms:
            await r.http.close()
    await b.outbox_drained()
    kinds: Counter[str] = Counter()
    for r in rooms:
        kinds.update(r.kinds)
    return total / elapsed, latencies, dict(kinds)
