"""Partition leases: which rooms a relay publishes (docs/decisions/0022-relay-partitions.md).

Rooms are split into ``P`` partitions by a stable hash of the stream id,
computed by PostgreSQL (``PARTITION_OF``): ``hashtextextended`` is the hash
behind hash-partitioned tables, which ``pg_upgrade`` keeps, so it does not
change under a running cluster, and every relay asks the same server.

Everything a relay holds lives on its one session, so it ends with it:

* **Membership**: a shared advisory lock on ``(MEMBER_CLASS, P)``. The granted
  ones in ``pg_locks`` are the live relays; a relay whose session ended (killed,
  cut off) drops out at once, with no heartbeat to expire. A relay configured
  with another ``P`` shows up as a mismatch and nobody takes new partitions
  until it is gone (two ``P`` would put one room under two locks).
* **A partition**: an exclusive advisory lock on ``(PARTITION_CLASS, k)``,
  taken with ``pg_try_advisory_lock`` and never waited for.
* **Spread**: each relay aims at ``ceil(P / live)`` partitions: it gives back
  what it holds above that (a relay joined) and tries the free ones below it (a
  relay left, or has not taken its share yet).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import asyncpg

__all__ = [
    "MEMBER_CLASS",
    "PARTITION_CLASS",
    "PARTITION_OF",
    "Leases",
    "Rebalance",
    "partition_sql",
]

MEMBER_CLASS = 0x726C796D  # "rlym": first key of a relay's membership lock
PARTITION_CLASS = 0x726C7970  # "rlyp": first key of a partition's lock


def partition_sql(column: str, count: str) -> str:
    """The partition of ``column`` (a stream id) among ``count`` partitions, in SQL.
    ``%`` keeps the sign of the hash: shifted into ``0 .. count - 1``."""
    return f"((hashtextextended({column}, 0) % {count} + {count}) % {count})"


PARTITION_OF = f"SELECT {partition_sql('$1::text', '$2::bigint')}"
"""The partition of one stream id (``$1``) among ``$2`` (tests, operators)."""

# The live relays (with our P, and with another), and the partitions held by
# anyone, in this database (advisory locks are per database, pg_locks is not).
_SURVEY = f"""
    SELECT count(*) FILTER (WHERE classid = {MEMBER_CLASS} AND objid = $1::oid) AS live,
           count(*) FILTER (WHERE classid = {MEMBER_CLASS} AND objid <> $1::oid) AS mismatched,
           coalesce(array_agg(objid::int) FILTER (WHERE classid = {PARTITION_CLASS}),
                    '{{}}') AS taken
    FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 2 AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

_JOIN = f"SELECT pg_advisory_lock_shared({MEMBER_CLASS}, $1::int)"

_TRY = f"""
    SELECT k FROM unnest($1::int[]) AS k WHERE pg_try_advisory_lock({PARTITION_CLASS}, k)
"""

_RELEASE = f"SELECT pg_advisory_unlock({PARTITION_CLASS}, k) FROM unnest($1::int[]) AS k"


@dataclass(frozen=True)
class Rebalance:
    """What one look at the other relays changed."""

    taken: tuple[int, ...] = ()
    released: tuple[int, ...] = ()
    live: int = 1
    mismatched: int = 0


class Leases:
    """The partitions one relay session holds; every call runs on that session."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("partitions must be >= 1")
        self.count = count
        self.held: frozenset[int] = frozenset()

    def holds_all(self) -> bool:
        return len(self.held) == self.count

    async def join(self, conn: asyncpg.Connection) -> None:
        """Count among the live relays (never blocks: the lock is shared)."""
        await conn.execute(_JOIN, self.count)

    def forget(self) -> None:
        """The session ended: whatever it held is free again."""
        self.held = frozenset()

    async def rebalance(self, conn: asyncpg.Connection) -> Rebalance:
        survey = await conn.fetchrow(_SURVEY, self.count)
        live, mismatched = max(int(survey["live"]), 1), int(survey["mismatched"])
        if mismatched:
            # A relay with another P hashes a room into another partition under
            # the same lock key: while both kinds live, neither takes anything new.
            # What is held stays held (only one kind can hold anything: each joins
            # before it looks, so the second to look sees the first and takes
            # nothing), and its rooms keep flowing.
            return Rebalance(live=live, mismatched=mismatched)
        target = math.ceil(self.count / live)
        if len(self.held) > target:
            # Keep the lowest: partition 0 runs the reactions, and a stable
            # choice moves fewer partitions when relays come and go.
            released = tuple(sorted(self.held)[target:])
            await self._release(conn, released)
            return Rebalance(released=released, live=live)
        if len(self.held) < target:
            taken_by_anyone = set(survey["taken"])
            free = [k for k in range(self.count) if k not in taken_by_anyone]
            # Relays that look at the same moment should not all try the same ones.
            random.shuffle(free)
            wanted = free[: target - len(self.held)]
            if wanted:
                rows = await conn.fetch(_TRY, wanted)
                taken = tuple(sorted(r["k"] for r in rows))
                self.held = self.held | set(taken)
                return Rebalance(taken=taken, live=live)
        return Rebalance(live=live)

    async def _release(self, conn: asyncpg.Connection, partitions: tuple[int, ...]) -> None:
        if partitions:
            await conn.execute(_RELEASE, list(partitions))
            self.held = self.held - set(partitions)
