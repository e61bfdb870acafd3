"""P4 replay: one client B events behind subscribes with lastSeq, until caught up.

Ours: from sending ``room:subscribe {lastSeq}`` to the client receiving the
head event, with ``batch: true`` (one ``room:events`` frame per page of 500,
as ``RoomcastClient`` subscribes) and without (one Socket.IO message per
event). Baseline: raw asyncpg reading the same rows (their stored columns, by
primary key: ``RAW_READ``) in pages of 500 (the gateway's page size), on one
connection (the median of three reads).

The app holds each room's latest events in memory (``ROOMCAST_REPLAY_CACHE_EVENTS``,
10,000 by default; gateway/history.py), so with the default settings this
replay is served from memory. A second app on the same database, with that
memory off, replays the same events from PostgreSQL: the figure for history
older than the window, or for a node that restarted (≥ 0.6× the raw read).

SSE: the same client behind, following the room over Server-Sent Events with
``Last-Event-ID`` (http/sse.py), from sending the request to receiving the head event.
An SSE stream replays from PostgreSQL (pages of 500, one write per page): the
figure sits next to Socket.IO's from PostgreSQL. No target.
"""

from __future__ import annotations

import time
from typing import Any

from bench.context import Bench, log
from bench.procs import Server
from bench.scenarios.common import arm, connect_clients, finished_at, wait
from bench.stats import Figure, Scenario, Target

PAGE = 500

RAW_READ = """
    SELECT event_id, seq, type, data::text AS data
    FROM events
    WHERE stream_id = $1 AND seq > $2
    ORDER BY seq
    LIMIT $3
"""
"""The rows as stored, by the primary key (the store's READ before it spliced the wire
payload in SQL): the baseline stays the plain read of the same rows."""


async def build_room(b: Bench, events: int) -> tuple[str, int]:
    """A room with ``events`` events after its creation, relayed already; (id, head)."""
    loaded = await b.streams.create_room("Replay room")
    head = await b.streams.grow(loaded.stream_id, events)
    await b.streams.notify()
    await b.outbox_drained(within=300)
    # The first read of rows just written sets their hint bits (it writes pages),
    # whichever side reads first; one untimed read leaves both measured warm, as
    # a room's history is once autovacuum has passed.
    await _raw_read_once(b, loaded.stream_id, head, events)
    return loaded.stream_id, head


async def app_replay(
    b: Bench,
    room: str,
    head: int,
    behind: int,
    *,
    batch: bool = False,
    server: Server | None = None,
) -> dict[str, Any]:
    one = b.workers.all[:1]
    await connect_clients(b, server or b.app, 1, None, workers=one, batch=batch)
    await arm(b, head)
    started = time.time()
    await one[0].call("subscribe", room=room, last_seq=head - behind, within=300)
    result = await wait(b, 300)
    result["seconds"] = finished_at(result) - started
    result["rate"] = result["received"] / result["seconds"]
    await b.workers.forget()
    return result


async def sse_replay(b: Bench, room: str, head: int, behind: int) -> dict[str, Any]:
    """One SSE stream opened with ``Last-Event-ID: head - behind``, until the head arrives."""
    one = b.workers.all[:1]
    await arm(b, head)
    started = time.time()
    await connect_clients(b, b.app, 1, room, last_seq=head - behind, workers=one, transport="sse")
    result = await wait(b, 300)
    result["seconds"] = finished_at(result) - started
    result["rate"] = result["received"] / result["seconds"]
    await b.workers.forget()
    return result


async def raw_read(b: Bench, room: str, head: int, behind: int) -> dict[str, Any]:
    """The median of three reads: one read is short enough for a hiccup to dominate it."""
    reads = sorted(
        [await _raw_read_once(b, room, head, behind) for _ in range(3)], key=lambda x: x["rate"]
    )
    return reads[1]


async def _raw_read_once(b: Bench, room: str, head: int, behind: int) -> dict[str, Any]:
    async with b.pool.acquire() as conn:
        started = time.perf_counter()
        after, rows = head - behind, 0
        while after < head:
            page = await conn.fetch(RAW_READ, room, after, min(PAGE, head - after))
            if not page:
                break
            rows += len(page)
            after = page[-1]["seq"]
        seconds = time.perf_counter() - started
    return {"received": rows, "seconds": seconds, "rate": rows / seconds}


async def run(b: Bench) -> Scenario:
    plan = b.plan
    behind = plan.p4_behind
    s = Scenario("P4", "Replay: one client events behind, subscribe with lastSeq")
    room, head = await build_room(b, behind)
    s.note = f"{behind} events behind; raw read in pages of {PAGE}"
    fig = s.figure(
        f"b{behind}",
        f"replay events/s, {behind} behind, room:events frames (batch: true)",
        "events/s",
        "raw asyncpg read of the same rows",
        target=Target(">=", 0.5, text="≥ 0.5× raw read"),
    )
    single = s.figure(
        f"b{behind}.single",
        f"replay events/s, {behind} behind, one message per event",
        "events/s",
        "raw asyncpg read of the same rows",
    )
    database = s.figure(
        f"b{behind}.database",
        f"replay events/s, {behind} behind, frames, from PostgreSQL (replay memory off)",
        "events/s",
        "raw asyncpg read of the same rows",
        target=Target(">=", 0.6, text="≥ 0.6× raw read"),
    )
    sse = s.figure(
        f"b{behind}.sse",
        f"replay events/s, {behind} behind, over SSE with Last-Event-ID (from PostgreSQL)",
        "events/s",
        "raw asyncpg read of the same rows",
    )
    # The same database, the same room: only where the replay reads from differs.
    db_only = await b.start_app("app-db-replay", {"ROOMCAST_REPLAY_CACHE_EVENTS": "0"})
    try:
        rounds = await _rounds(b, room, head, behind, (fig, single, database, sse), db_only)
    finally:
        await b.stop(db_only)
    s.details["rounds"] = rounds
    for mode, figure in (
        ("batch", fig),
        ("single", single),
        ("database", database),
        ("sse", sse),
    ):
        wrong = [x for x in rounds if x[mode]["received"] != behind or x[mode]["gaps"]]
        if wrong:
            figure.note = "the client did not receive exactly the missed events: see details"
    return s


async def _rounds(
    b: Bench, room: str, head: int, behind: int, figures: tuple[Figure, ...], db_only: Server
) -> list[dict[str, Any]]:
    """Each repeat: memory frames, memory single, PostgreSQL frames, SSE and the raw
    read, in alternating order."""
    fig, single, database, sse = figures
    modes = ("batch", "single", "database", "sse", "raw")
    # One untimed replay per mode: the app's pool opens the connections a replay
    # reads ahead on (it starts with two, the relay holding one), and first calls
    # fill caches; the raw baseline's pool is already open.
    for warm in (True, False):
        await app_replay(b, room, head, behind, batch=warm)
    await app_replay(b, room, head, behind, batch=True, server=db_only)
    await sse_replay(b, room, head, behind)
    rounds = []
    for r in range(b.plan.repeats):
        order = modes if r % 2 == 0 else tuple(reversed(modes))
        got = {}
        for which in order:
            if which == "raw":
                got[which] = await raw_read(b, room, head, behind)
            elif which == "sse":
                got[which] = await sse_replay(b, room, head, behind)
            elif which == "database":
                got[which] = await app_replay(b, room, head, behind, batch=True, server=db_only)
            else:
                got[which] = await app_replay(b, room, head, behind, batch=which == "batch")
        fig.ours.append(got["batch"]["rate"])
        fig.base.append(got["raw"]["rate"])
        single.ours.append(got["single"]["rate"])
        single.base.append(got["raw"]["rate"])
        database.ours.append(got["database"]["rate"])
        database.base.append(got["raw"]["rate"])
        sse.ours.append(got["sse"]["rate"])
        sse.base.append(got["raw"]["rate"])
        rounds.append(
            {k: {x: v[x] for x in ("received", "seconds", "rate")} for k, v in got.items()}
        )
        for mode in ("batch", "single", "database", "sse"):
            rounds[-1][mode].update({x: got[mode][x] for x in ("gaps", "dups", "caught_up")})
        log(
            f"P4 #{r + 1}: replay {got['batch']['rate']:.0f} events/s in frames, "
            f"{got['single']['rate']:.0f} single, {got['database']['rate']:.0f} from "
            f"PostgreSQL, {got['sse']['rate']:.0f} over SSE, "
            f"raw read {got['raw']['rate']:.0f} rows/s"
        )
    return rounds
