"""The scenarios, in the order they run.

P3 before P2 (P2's rate is half of P3's bare capacity); P8 before P7 (P7 verifies
P8's longest stream).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.context import Bench
from bench.scenarios import (
    h1_nonreaders,
    n1_nodes,
    n2_relay,
    n3_repair,
    n4_limits,
    o1_overrides,
    p1_commands,
    p2_latency,
    p3_fanout,
    p4_replay,
    p5_reconnect,
    p6_connections,
    p7_audit,
    p8_growth,
    p9_browser,
    r1_replay_cap,
)
from bench.stats import Scenario

__all__ = ["SCENARIOS"]

SCENARIOS: dict[str, Callable[[Bench], Awaitable[Scenario]]] = {
    "P1": p1_commands.run,
    "P3": p3_fanout.run,
    "P2": p2_latency.run,
    "P4": p4_replay.run,
    "P5": p5_reconnect.run,
    "P6": p6_connections.run,
    "P8": p8_growth.run,
    "P7": p7_audit.run,
    "P9": p9_browser.run,
    "H1": h1_nonreaders.run,
    "R1": r1_replay_cap.run,
    "O1": o1_overrides.run,
    "N1": n1_nodes.run,
    "N2": n2_relay.run,
    "N3": n3_repair.run,
    "N4": n4_limits.run,
}
