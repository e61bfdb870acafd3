"""N2 relay throughput through Redis: events/s a relay publishes and the nodes receive.

Ours: ``roomcast relay`` publishes E events, committed in one append and woken
by NOTIFY, into the bench's own Redis, one PUBLISH per event awaited in order
(outbox/relay.py); both gateway nodes hear them, each delivering to one client
subscribed with ``batch: true`` (so the clients and the fan-out cost next to
nothing). Baseline: one ``roomcast serve`` (no Redis), whose relay publishes the
same E events to its own sockets in the process, two such clients. Both: E ÷
the time from the commit to the last client holding the last event.

Also the relay process's CPU per event, against the whole single node's CPU per
event (its relay and its delivery together), and in ``details`` the cores of
each process (Redis's included) per round.

The floor of one PUBLISH at a time: the harness sends E messages the size of
the relay's (the manager's envelope around the same stored event) to the same
Redis, each awaited before the next, with redis-py on one connection, on a
channel nobody listens to. Relay ÷ that says how much of the relay's rate is
the round trip to Redis and how much its own work per event.
"""

from __future__ import annotations

import time

import msgspec
from redis import asyncio as aioredis

from bench.context import Bench, log
from bench.scenarios.ncluster import RedisServer, cluster
from bench.scenarios.nside import cores_text, fanout_round, one_node, two_nodes
from bench.stats import Scenario

CLIENTS = 2
"""One per node in the cluster; two on the one node."""


async def raw_publish(b: Bench, redis: RedisServer, count: int) -> tuple[float, float]:
    """PUBLISHes/s of ``count`` relay-sized messages, one awaited at a time, and the
    harness's CPU per PUBLISH (s)."""
    envelope = {
        "method": "emit",
        "event": "room:updated",
        "data": [msgspec.json.decode(b.template), "123.45"],
        "namespace": "/",
        "room": "room:room_0123456789abcdef",
        "skip_sid": None,
        "callback": None,
        "host_id": "0" * 32,
    }
    message = msgspec.json.encode(envelope)
    client = aioredis.Redis.from_url(redis.url)
    try:
        await client.publish("bench-raw", message)  # connect before the clock
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await client.publish("bench-raw", message)
        elapsed, spent = time.perf_counter() - started, time.process_time() - cpu
        return count / elapsed, spent / count
    finally:
        await client.aclose()


async def run(b: Bench) -> Scenario:
    events = b.plan.n2_events
    s = Scenario("N2", "Relay throughput through Redis vs the one-node local publish")
    s.note = (
        f"{events} events in one append; one batch client per node (two on the one node); "
        "the relay: `roomcast relay` on the bench's own redis-server"
    )
    rate = s.figure(
        "rate",
        f"relayed events/s through Redis to two nodes ({events} events)",
        "events/s",
        "one node's relay, local publish",
    )
    relay_cpu = s.figure(
        "relay.cpu",
        "relay process CPU per event (publishing into Redis)",
        "µs",
        "the one node's CPU per event (its relay and delivery)",
        higher_is_better=False,
    )
    floor = s.figure(
        "rate.raw",
        "relayed events/s through Redis vs one PUBLISH at a time (redis-py, the harness)",
        "events/s",
        "redis-py PUBLISH loop, relay-sized messages, each awaited",
    )
    relay_vs_raw = s.figure(
        "relay.cpu.raw",
        "relay process CPU per event vs redis-py's CPU per PUBLISH",
        "µs",
        "the harness's CPU per PUBLISH in the loop above",
        higher_is_better=False,
    )
    rounds = []
    async with cluster(b, "n2") as c:
        sides = (one_node(b), two_nodes(c))
        for r in range(b.plan.repeats):
            order = sides if r % 2 == 0 else tuple(reversed(sides))
            got = {
                side.name: await fanout_round(b, side, CLIENTS, events, batch=True)
                for side in order
            }
            for side in order:
                res = got[side.name]
                rounds.append(
                    {"side": side.name, "repeat": r}
                    | {k: res[k] for k in ("expected", "received", "gaps", "dups", "seconds")}
                    | {"cpu": res["cpu"]}
                )
                log(
                    f"N2 #{r + 1} {side.name}: {events / res['seconds']:.0f} events/s; "
                    f"cores: {cores_text(res['cpu'])}"
                )
            two, one = got["two nodes"], got["one node"]
            raw, raw_cpu = await raw_publish(b, c.redis, events)
            log(
                f"N2 #{r + 1} redis-py PUBLISH loop: {raw:.0f}/s, "
                f"{raw_cpu * 1e6:.1f} µs of CPU each"
            )
            relay_vs_raw.ours.append(two["cpu"]["relay"] * two["cpu"]["wall_s"] / events * 1e6)
            relay_vs_raw.base.append(raw_cpu * 1e6)
            floor.ours.append(events / two["seconds"])
            floor.base.append(raw)
            rate.ours.append(events / two["seconds"])
            rate.base.append(events / one["seconds"])
            relay_cpu.ours.append(two["cpu"]["relay"] * two["cpu"]["wall_s"] / events * 1e6)
            relay_cpu.base.append(one["cpu"]["app"] * one["cpu"]["wall_s"] / events * 1e6)
    s.details["rounds"] = rounds
    lost = [x for x in rounds if x["received"] != x["expected"] or x["gaps"] or x["dups"]]
    if lost:
        rate.note = f"{len(lost)} round(s) lost, skipped or repeated events: see details"
    return s
