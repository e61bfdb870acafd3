"""N2 relay throughput through Redis: events/s a relay publishes and the nodes receive.

Ours: ``roomcast relay`` publishes E events, committed in one append and woken
by NOTIFY, into the bench's own Redis, one PUBLISH per event awaited in order
(outbox/relay.py); both gateway nodes hear them, each delivering to one client
subscribed with ``batch: true`` (so the clients and the fan-out cost next to
nothing). The gateways' position checks are set 60 s apart here, so that only
the relay delivers (as shipped, a node that sees the head ahead of it for one
interval reads the rest from PostgreSQL itself, and a slow relay would be
hidden by those refills; ``details`` counts them: 0). Baseline: one ``roomcast
serve`` (no Redis), whose relay publishes the same E events to its own sockets
in the process, two such clients. Both: E ÷ the time from the commit (the
append's return) to the last client holding the last event.

Also the relay process's CPU per event, against the whole single node's CPU per
event (its relay and its delivery together), and in ``details`` the cores of
each process (Redis's included) per round.

The floor of one PUBLISH at a time: a process of its own (n2_publish.py) sends
E messages the size of the relay's (the manager's envelope around the same
stored event) to the same Redis, each awaited before the next, with redis-py on
one connection, on a channel nobody listens to. Relay ÷ that says how much of the relay's rate is
the round trip to Redis and how much its own work per event.
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

from bench.context import DATA_DIR, Bench, log
from bench.scenarios.ncluster import RedisServer, cluster
from bench.scenarios.nside import cores_text, fanout_round, one_node, two_nodes
from bench.stats import Scenario

CLIENTS = 2
"""One per node in the cluster; two on the one node."""
_KEPT = ("expected", "received", "gaps", "dups", "seconds", "refilled")


async def raw_publish(b: Bench, redis: RedisServer, count: int) -> tuple[float, float]:
    """PUBLISHes/s of ``count`` relay-sized messages, one awaited at a time, and the
    publishing process's CPU per PUBLISH (s): bench/scenarios/n2_publish.py."""
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
    message = DATA_DIR / "n2-message.json"
    message.write_bytes(msgspec.json.encode(envelope))
    argv = [sys.executable, "-m", "bench.scenarios.n2_publish", "--url", redis.url,
            "--count", str(count), "--message-file", str(message)]  # fmt: skip
    proc = await b.procs.spawn("n2-publish", argv, pipes=True)
    assert proc.stdout is not None
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
    finally:
        await b.procs.stop(proc)
    if not line:
        raise RuntimeError("the PUBLISH loop printed nothing: see n2-publish.log")
    result = msgspec.json.decode(line)
    return float(result["rate"]), float(result["cpu_per_publish"])


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
        "relayed events/s through Redis vs one PUBLISH at a time (redis-py)",
        "events/s",
        "redis-py PUBLISH loop, relay-sized messages, each awaited",
    )
    relay_vs_raw = s.figure(
        "relay.cpu.raw",
        "relay process CPU per event vs redis-py's CPU per PUBLISH",
        "µs",
        "the PUBLISH loop's CPU per PUBLISH (a process of its own)",
        higher_is_better=False,
    )
    rounds = []
    async with cluster(b, "n2", {"ROOMCAST_POSITION_CHECK": "60"}) as c:
        sides = (one_node(b), two_nodes(c))
        for r in range(b.plan.repeats):
            order = sides if r % 2 == 0 else tuple(reversed(sides))
            got = {}
            for side in order:
                got[side.name] = await fanout_round(
                    b, side, CLIENTS, events, batch=True, from_commit=True
                )
            for side in order:
                res = got[side.name]
                rounds.append(
                    {"side": side.name, "repeat": r}
                    | {k: res[k] for k in _KEPT}
                    | {"cpu": res["cpu"]}
                )
                log(
                    f"N2 #{r + 1} {side.name}: {events / res['seconds']:.0f} events/s, "
                    f"{res['refilled']} refilled; "
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
    if any(x["refilled"] for x in rounds):
        rate.note += " some events came from position checks, not the relay: see details"
    return s
