"""N1 two nodes through Redis against one node: fan-out and command throughput.

Ours: the reference layout (bench/scenarios/ncluster.py): two ``roomcast
gateway`` nodes and one ``roomcast relay`` on a redis-server of the bench's
own. Baseline: one ``roomcast serve`` as shipped (relay inside, no Redis), the
same total clients and commands, in the same repeat, in alternating order.

* **Fan-out**: P3's round (E events committed in one append, the relay woken by
  NOTIFY, one message per event) with the N clients split evenly over the two
  nodes: delivered msgs/s, and the server side's CPU per delivered message
  (nodes, relay, Redis and PostgreSQL's backends of the database).
* **Commands**: P1's renames at concurrency c (a room per connection), the
  connections split evenly over the two nodes: commands/s, and CPU per command.
  A third layout takes turns with those two: every connection on one node of
  the cluster while the other only listens. Against the one node it prices the
  relay and Redis without the split; the listening node's CPU per event is
  what every node pays for each event of the cluster, sockets in the room or not.

Every round records, from /proc, the cores each process used and what the whole
machine used (``details``): on two cores, the answer to why two nodes do not
scale.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.context import Bench, log
from bench.scenarios.ncluster import cluster
from bench.scenarios.nside import (
    Side,
    command_round,
    cores_text,
    fanout_round,
    one_node,
    server_cpu,
    two_nodes,
)
from bench.stats import Scenario

SPLIT, SERVING = "two nodes", "two nodes, one serving"


async def run(b: Bench) -> Scenario:
    plan = b.plan
    s = Scenario("N1", "Two nodes through Redis vs one node: fan-out and commands")
    s.note = (
        "two `roomcast gateway` + one `roomcast relay` on the bench's own redis-server, "
        "against one `roomcast serve` (no Redis); clients and connections split evenly"
    )
    async with cluster(b, "n1") as c:
        sides = (one_node(b), two_nodes(c))
        for clients, events in plan.n1_fanout:
            await _fanout(b, s, sides, clients, events)
        serving = dataclasses.replace(sides[1], name=SERVING, servers=[c.nodes[0]])
        await _commands(b, s, (*sides, serving), plan.n1_concurrency, plan.n1_commands)
    return s


async def _fanout(
    b: Bench, s: Scenario, sides: tuple[Side, Side], clients: int, events: int
) -> None:
    rate = s.figure(
        f"fanout{clients}",
        f"delivered msgs/s, 1 room × {clients} clients ({events} events), two nodes",
        "msg/s",
        "one node, the same clients",
    )
    cpu = s.figure(
        f"fanout{clients}.cpu",
        f"server-side CPU per delivered message, {clients} clients, two nodes",
        "µs",
        "one node",
        higher_is_better=False,
    )
    rounds: list[dict[str, Any]] = []
    for r in range(b.plan.repeats):
        order = sides if r % 2 == 0 else tuple(reversed(sides))
        got = {side.name: await fanout_round(b, side, clients, events) for side in order}
        for side in order:
            res = got[side.name]
            rounds.append({"side": side.name, "repeat": r} | {k: res[k] for k in _KEPT})
            log(
                f"N1 fan-out n={clients} #{r + 1} {side.name}: "
                f"{res['received'] / res['seconds']:.0f} msg/s, {res['refilled']} refilled; "
                f"cores: {cores_text(res['cpu'])}"
            )
        two, one = got["two nodes"], got["one node"]
        rate.ours.append(two["received"] / two["seconds"])
        rate.base.append(one["received"] / one["seconds"])
        for fig_side, values in ((two, cpu.ours), (one, cpu.base)):
            spent = server_cpu(fig_side["cpu"]) * fig_side["cpu"]["wall_s"]
            values.append(spent / max(1, fig_side["received"]) * 1e6)
    s.details[f"fanout{clients}"] = rounds
    lost = [x for x in rounds if x["received"] != x["expected"] or x["gaps"] or x["dups"]]
    if lost:
        rate.note = f"{len(lost)} round(s) lost, skipped or repeated messages: see details"
    refills = sum(x["refilled"] for x in rounds if x["side"] == "two nodes")
    if refills:
        rate.note += f" {refills} events reached the nodes by position checks, not Redis"


_KEPT = (
    "expected",
    "received",
    "caught_up",
    "gaps",
    "dups",
    "dropped",
    "seconds",
    "cpu",
    "refilled",
)


async def _commands(
    b: Bench, s: Scenario, sides: tuple[Side, ...], concurrency: int, total: int
) -> None:
    rate = s.figure(
        f"c{concurrency}",
        f"commands/s, concurrency {concurrency}, connections split over two nodes",
        "cmd/s",
        "one node, the same connections",
    )
    cpu = s.figure(
        f"c{concurrency}.cpu",
        f"server-side CPU per command, concurrency {concurrency}, two nodes",
        "µs",
        "one node",
        higher_is_better=False,
    )
    serving = s.figure(
        f"c{concurrency}.serving",
        f"commands/s, concurrency {concurrency}, all on one node of the cluster "
        "(the other listens)",
        "cmd/s",
        "one node, the same connections",
    )
    listening = s.figure(
        f"c{concurrency}.listening",
        "CPU per event of the node that only listens (hears every event through Redis)",
        "µs",
        "the serving node's CPU per command",
        higher_is_better=False,
    )
    rounds: list[dict[str, Any]] = []
    for r in range(b.plan.repeats):
        order = sides if r % 2 == 0 else tuple(reversed(sides))
        got = {side.name: await command_round(b, side, concurrency, total) for side in order}
        for side in order:
            res = got[side.name]
            rounds.append({"side": side.name, "repeat": r} | res)
            log(
                f"N1 commands c={concurrency} #{r + 1} {side.name}: {res['rate']:.0f} cmd/s; "
                f"cores: {cores_text(res['cpu'])}"
            )
        two, one, alone = got[SPLIT], got["one node"], got[SERVING]
        rate.ours.append(two["rate"])
        rate.base.append(one["rate"])
        serving.ours.append(alone["rate"])
        serving.base.append(one["rate"])
        wall = alone["cpu"]["wall_s"]
        listening.ours.append(alone["cpu"]["node1"] * wall / total * 1e6)
        listening.base.append(alone["cpu"]["node0"] * wall / total * 1e6)
        for fig_side, values in ((two, cpu.ours), (one, cpu.base)):
            spent = server_cpu(fig_side["cpu"]) * fig_side["cpu"]["wall_s"]
            values.append(spent / total * 1e6)
    s.details[f"c{concurrency}"] = rounds
