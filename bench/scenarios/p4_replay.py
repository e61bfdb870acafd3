"""P4 replay: one client B events behind subscribes with lastSeq, until caught up.

Ours: from sending ``room:subscribe {lastSeq}`` to the client receiving the
head event (each replayed event is its own Socket.IO message). Baseline: raw
asyncpg reading the same rows with the store's READ statement in pages of 500
(the gateway's page size), on one connection (the median of three reads).
"""

from __future__ import annotations

import time
from typing import Any

from bench.context import Bench, log
from bench.scenarios.common import arm, connect_clients, finished_at, wait
from bench.stats import Scenario, Target
from roomcast.outbox import sql

PAGE = 500


async def build_room(b: Bench, events: int) -> tuple[str, int]:
    """A room with ``events`` events after its creation, relayed already; (id, head)."""
    loaded = await b.streams.create_room("Replay room")
    head = await b.streams.grow(loaded.stream_id, events)
    await b.streams.notify()
    await b.outbox_drained(within=300)
    return loaded.stream_id, head


async def app_replay(b: Bench, room: str, head: int, behind: int) -> dict[str, Any]:
    one = b.workers.all[:1]
    await connect_clients(b, b.app, 1, None, workers=one)
    await arm(b, head)
    started = time.time()
    await one[0].call("subscribe", room=room, last_seq=head - behind, within=300)
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
            page = await conn.fetch(sql.READ, room, after, min(PAGE, head - after))
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
        f"replay events/s, {behind} behind",
        "events/s",
        "raw asyncpg read of the same rows",
        target=Target(">=", 0.5, text="≥ 0.5× raw read"),
    )
    rounds = []
    for r in range(plan.repeats):
        order = ("app", "raw") if r % 2 == 0 else ("raw", "app")
        got = {}
        for which in order:
            runner = app_replay if which == "app" else raw_read
            got[which] = await runner(b, room, head, behind)
        fig.ours.append(got["app"]["rate"])
        fig.base.append(got["raw"]["rate"])
        rounds.append(
            {k: {x: v[x] for x in ("received", "seconds", "rate")} for k, v in got.items()}
        )
        rounds[-1]["app"].update({x: got["app"][x] for x in ("gaps", "dups", "caught_up")})
        log(
            f"P4 #{r + 1}: replay {got['app']['rate']:.0f} events/s, "
            f"raw read {got['raw']['rate']:.0f} rows/s"
        )
    s.details["rounds"] = rounds
    wrong = [x for x in rounds if x["app"]["received"] != behind or x["app"]["gaps"]]
    if wrong:
        fig.note = "the client did not receive exactly the missed events: see details"
    return s
