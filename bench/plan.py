"""How big each scenario is: the full run and ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["FULL", "QUICK", "Plan"]


@dataclass(frozen=True)
class Plan:
    mode: str
    repeats: int
    workers: int
    """Client processes (clients are spread over them)."""
    # P1: commands through REST vs the same append statement on raw asyncpg.
    p1_levels: tuple[int, ...]
    p1_commands: int
    p1_mix_levels: tuple[int, ...]
    """Where P1 also runs the command mix (bench/scenarios/p1_mix.py)."""
    # P3: fan-out to one room; (clients, events) pairs.
    p3_runs: tuple[tuple[int, int], ...]
    # P2: latency at half the bare emit's P3 capacity, for this many clients.
    p2_clients: int
    p2_seconds: float
    # P4: one client this many events behind.
    p4_behind: int
    # P5: reconnect storm; this many clients, each p5_behind events behind.
    p5_clients: tuple[int, ...]
    p5_behind: int
    p5_deadline: float
    # P6: RSS per idle connection at these connection counts.
    p6_counts: tuple[int, ...]
    p6_settle: float
    """Seconds to let a server settle before reading its RSS."""
    # P8: load growth: stream lengths, commands timed per length, events replayed.
    p8_lengths: tuple[int, ...]
    p8_commands: int
    p8_replay: int
    p8_cold_samples: int
    """Fresh app processes per repeat for P8's cold figures (one sample per length each)."""
    o1_concurrency: int = 32
    """O1: the renames' concurrency, shipped app against each override switched off."""
    o1_commands: int = 4000
    o1_step_blocks: int = 20
    """O1's in-process steps: block pairs (ratio samples) per step."""
    o1_step_calls: int = 5000
    """Calls per block."""
    pool_size: int = 10
    """The app's ROOMCAST_DB_POOL_SIZE (its default); the raw baseline's pool too."""
    # N1-N3: two gateway nodes and a relay through Redis against one node.
    n1_fanout: tuple[tuple[int, int], ...] = ((1000, 100),)
    """N1 fan-out: (clients in all, events) pairs."""
    n1_concurrency: int = 32
    n1_commands: int = 4000
    n2_events: int = 10_000
    n3_clients: int = 200
    n3_events: int = 10
    n3_pauses: int = 3
    """N3: Redis pauses per repeat (each beside a round with Redis running)."""
    n4_concurrency: int = 32
    n4_commands: int = 4000
    """N4: renames per round at ``n4_concurrency`` (a quarter of them at concurrency 1)."""

    def with_repeats(self, repeats: int | None) -> Plan:
        return self if repeats is None else replace(self, repeats=repeats)


FULL = Plan(
    mode="full",
    repeats=3,
    workers=4,
    p1_levels=(1, 8, 32),
    p1_commands=6000,
    p1_mix_levels=(1, 32),
    p3_runs=((100, 1000), (1000, 100)),
    p2_clients=1000,
    p2_seconds=20,
    p4_behind=10_000,
    p5_clients=(1000, 5000),
    p5_behind=100,
    p5_deadline=30,
    p6_counts=(1000, 5000),
    p6_settle=2.0,
    p8_lengths=(1_000, 10_000, 100_000),
    p8_commands=300,
    p8_replay=1000,
    p8_cold_samples=3,
)

QUICK = Plan(
    mode="quick",
    repeats=2,
    workers=2,
    p1_levels=(1, 8, 32),
    p1_commands=200,
    p1_mix_levels=(32,),
    p3_runs=((50, 200),),
    p2_clients=50,
    p2_seconds=1,
    p4_behind=1000,
    p5_clients=(50,),
    p5_behind=100,
    p5_deadline=15,
    p6_counts=(200,),
    p6_settle=1.0,
    p8_lengths=(1_000, 10_000),
    p8_commands=60,
    p8_replay=200,
    p8_cold_samples=1,
    o1_concurrency=8,
    o1_commands=400,
    o1_step_blocks=6,
    o1_step_calls=1000,
    n1_fanout=((100, 200),),
    n1_concurrency=16,
    n1_commands=800,
    n2_events=2000,
    n3_clients=40,
    n3_events=5,
    n3_pauses=2,
    n4_concurrency=8,
    n4_commands=400,
)
