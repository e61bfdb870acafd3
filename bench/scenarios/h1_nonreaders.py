"""H1 hostile readers: server RSS with 100 connections that never read, each
subscribing from seq 0 to a 100,000-event room.

Before the outbound high-water mark (ADR 0011) one such connection with 50
subscribes of a 20,000-event room took the server from 103 MB to 665 MB, and two
to 1.23 GB (issue 15). Each connection here is a WebSocket whose receive buffer
is 4 KiB and which stops reading after the Socket.IO CONNECT; it sends one
``room:subscribe {lastSeq: 0}``. RSS is read on a fresh server before the
clients connect, and its peak is followed until every one of them has been
ended (SLOW_CONSUMER, or engine.io's ping timeout) or 60 s have passed.

The figure: RSS growth. Baseline: the bound the limit promises, connections ×
``ROOMCAST_MAX_SOCKET_BUFFER_BYTES`` (8 MiB): the ratio must stay ≤ 1. ``--quick``
runs 10 connections and a 5,000-event room for 3 s (a smoke run of the same code).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import websockets

from bench.context import Bench, log
from bench.procs import Server
from bench.stats import Scenario, Target

LIMIT = 8 * 1024 * 1024
"""``ROOMCAST_MAX_SOCKET_BUFFER_BYTES``'s default."""
GRACE = 5.0
"""``ROOMCAST_SLOW_CONSUMER_GRACE``'s default: an ended connection keeps what its writer
had taken until then (its TCP connection is aborted at the end of it)."""


def _sizes(b: Bench) -> tuple[int, int, float]:
    """(connections, room events, seconds to watch them) for this mode."""
    return (10, 5_000, 3.0) if b.plan.mode == "quick" else (100, 100_000, 60.0)


async def _never_reading(server: Server, token: str, room: str) -> Any:
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", server.port))
    ws = await websockets.connect(
        f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
        sock=raw,
        max_queue=1,
        max_size=None,
        open_timeout=30,
    )
    await ws.recv()  # Engine.IO OPEN
    await ws.send("40" + json.dumps({"token": token}))
    answer = await ws.recv()
    if not str(answer).startswith("40{"):
        raise RuntimeError(f"CONNECT refused: {answer!r}")
    await ws.send("421" + json.dumps(["room:subscribe", {"roomId": room, "lastSeq": 0}]))
    # Its ack comes before the replay: a refused subscribe would measure nothing.
    async with asyncio.timeout(30):
        while not str(answer := await ws.recv()).startswith("431"):
            pass
    if not json.loads(str(answer)[3:])[0].get("success"):
        raise RuntimeError(f"subscribe refused: {str(answer)[:200]}")
    return ws  # and never read again


async def _connected(b: Bench, server: Server) -> int:
    async with b.http(server) as http:
        _, body = await http.request("GET", "/health")
        return int(json.loads(body)["node"]["sockets"]["connected"])


async def _round(b: Bench, r: int, room: str, clients: int, watch: float) -> dict[str, Any]:
    # Every connection is the room's organizer (a reader of the room): the per-user
    # connection limit is raised so that it is not what is measured.
    server = await b.start_app(
        f"h1-app-{r}", {"ROOMCAST_MAX_CONNECTIONS_PER_USER": str(clients + 1)}
    )
    opened: list[Any] = []
    try:
        await asyncio.sleep(1.0)  # the fresh process settles before its RSS is read
        before = server.rss()
        started = time.monotonic()
        for _ in range(clients):
            opened.append(await _never_reading(server, b.token(), room))
        peak = server.rss()
        deadline = time.monotonic() + watch
        while time.monotonic() < deadline:
            peak = max(peak, server.rss())
            if await _connected(b, server) == 0:
                break
            await asyncio.sleep(0.5)
        ended_after = time.monotonic() - started
        await asyncio.sleep(1.0)
        soon_after = server.rss()
        await asyncio.sleep(GRACE)
        after = server.rss()
        left = await _connected(b, server)
        return {
            "rss_before": before,
            "rss_peak": peak,
            "rss_1s_after": soon_after,
            "rss_after": after,
            "growth": max(peak, soon_after, after) - before,
            "still_connected": left,
            "ended_within_seconds": round(ended_after, 1),
        }
    finally:
        for ws in opened:
            ws.transport.abort()
        await b.stop(server)


async def run(b: Bench) -> Scenario:
    clients, events, watch = _sizes(b)
    s = Scenario("H1", f"Hostile readers: RSS with {clients} connections that never read")
    s.note = (
        f"each subscribes from seq 0 to a {events}-event room and never reads;"
        " fresh server per round"
    )
    fig = s.figure(
        "rss",
        f"RSS growth with {clients} non-reading subscribers",
        "MB",
        f"the bound: {clients} × ROOMCAST_MAX_SOCKET_BUFFER_BYTES",
        target=Target("<=", 1.0, text="≤ connections × the per-socket limit"),
        higher_is_better=False,
    )
    loaded = await b.streams.create_room("Hostile readers")
    await b.streams.grow(loaded.stream_id, events)
    await b.streams.notify()
    await b.outbox_drained(within=600)
    rounds = []
    for r in range(b.plan.repeats):
        got = await _round(b, r, loaded.stream_id, clients, watch)
        fig.ours.append(got["growth"] / 1e6)
        fig.base.append(clients * LIMIT / 1e6)
        rounds.append(got)
        log(
            f"H1 #{r + 1}: +{got['growth'] / 1e6:.0f} MB (peak {got['rss_peak'] / 1e6:.0f} MB,"
            f" {got['rss_after'] / 1e6:.0f} MB {1 + GRACE:.0f} s after the end),"
            f" {got['still_connected']} still connected after {got['ended_within_seconds']} s"
        )
    s.details["rounds"] = rounds
    return s
