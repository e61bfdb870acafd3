"""R1 replay cap: what ``ROOMCAST_SUBSCRIBE_REPLAY_MAX`` costs a client catching up.

A subscribe replays at most the cap's seqs inline; ``RoomcastClient`` pages the
rest with ``room:replay`` (docs/decisions/0019-subscribe-replay-cap.md). One
``RoomcastClient`` (``batch: true``, as it subscribes by default) subscribes from
seq 0 to a room of B events on apps that differ only in the cap, one fresh
client per measurement, the apps taking turns in alternating order.

Figures, per cap, as ratios to the uncapped app (cap 0) in the same repeat:

* **catch-up**: from sending ``room:subscribe`` to the client holding the head
  event (inline part, then the pages);
* **inline**: from sending ``room:subscribe`` to its ``room:subscribed`` notice:
  how long the subscribe holds the socket's subscribe lock and keeps its live
  events at the gate (in memory), the work one subscribe can ask of the server.

Every app has its replay memory off (``ROOMCAST_REPLAY_CACHE_EVENTS=0``): inline
and paged reads both come from PostgreSQL, as they would for history older than
the memory window, and no app is favoured by having relayed the events itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.context import Bench, log
from bench.procs import Server
from bench.stats import Scenario
from roomcast.client import RoomcastClient


def _sizes(b: Bench) -> tuple[int, tuple[int, ...]]:
    """(room events, caps to compare with no cap) for this mode."""
    if b.plan.mode == "quick":
        return 3_000, (500, 1_000)
    return 20_000, (500, 1_000, 2_000, 5_000, 10_000)


async def _catch_up(server: Server, token: str, room: str, head: int) -> dict[str, float]:
    reached = asyncio.Event()
    inline_done = asyncio.Event()

    def seen(event: str, payload: dict[str, Any]) -> None:
        if event == "room:subscribed":
            inline_done.set()
        elif payload.get("seq") == head:
            reached.set()

    async with RoomcastClient(server.url, token, request_timeout=300) as client:
        client.on("*", seen)
        started = time.perf_counter()
        await client.subscribe(room, last_seq=0)
        await asyncio.wait_for(inline_done.wait(), 300)
        inline = time.perf_counter() - started
        await asyncio.wait_for(reached.wait(), 300)
        total = time.perf_counter() - started
        if client.last_seq(room) != head:
            raise RuntimeError(f"caught up to {client.last_seq(room)}, not {head}")
    return {"inline": inline, "catch_up": total}


async def run(b: Bench) -> Scenario:
    events, caps = _sizes(b)
    s = Scenario("R1", f"Subscribe replay cap: one client catching up on {events} events")
    s.note = "RoomcastClient from seq 0; inline up to the cap, then room:replay pages of 1,000"
    loaded = await b.streams.create_room("Replay cap")
    head = await b.streams.grow(loaded.stream_id, events - 1)
    await b.streams.notify()
    await b.outbox_drained(within=300)
    apps: dict[int, Server] = {}
    try:
        for cap in (0, *caps):
            apps[cap] = await b.start_app(
                f"r1-cap-{cap}",
                {"ROOMCAST_SUBSCRIBE_REPLAY_MAX": str(cap), "ROOMCAST_REPLAY_CACHE_EVENTS": "0"},
            )
        token = b.token()
        # One untimed catch-up: the rows' first read sets their hint bits.
        await _catch_up(apps[0], token, loaded.stream_id, head)
        catch_up = {
            cap: s.figure(
                f"catch_up_{cap}",
                f"catch-up time with a cap of {cap}",
                "s",
                "no cap",
                higher_is_better=False,
            )
            for cap in caps
        }
        inline = {
            cap: s.figure(
                f"inline_{cap}",
                f"subscribe's inline replay with a cap of {cap}",
                "s",
                "no cap",
                higher_is_better=False,
            )
            for cap in caps
        }
        for r in range(b.plan.repeats):
            for cap in caps:
                order = [0, cap] if r % 2 == 0 else [cap, 0]
                got = {c: await _catch_up(apps[c], token, loaded.stream_id, head) for c in order}
                catch_up[cap].ours.append(got[cap]["catch_up"])
                catch_up[cap].base.append(got[0]["catch_up"])
                inline[cap].ours.append(got[cap]["inline"])
                inline[cap].base.append(got[0]["inline"])
                log(
                    f"R1 #{r + 1} cap {cap}: catch-up {got[cap]['catch_up']:.2f} s"
                    f" (no cap {got[0]['catch_up']:.2f} s), inline {got[cap]['inline']:.3f} s"
                    f" (no cap {got[0]['inline']:.3f} s)"
                )
    finally:
        for server in apps.values():
            await b.stop(server)
    return s
