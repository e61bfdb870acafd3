"""A history checker: what every client delivered, compared with ``events`` in PostgreSQL.

Each client in a fault test records, per stream (a room, or ``user:{id}`` for a
notification inbox), the seqs its application was handed, in the order it was
handed them (``History.recorder``). ``History.check`` then reads each stream's
log and reports, per client and stream:

* **lost**: seqs after the client's starting point, up to the head, that it
  should have seen (it was a member, or the organizer) and never delivered;
* **duplicated**: seqs delivered more than once (the client is meant to dedupe);
* **reordered**: deliveries that came after a higher seq;
* **after removal**: seqs delivered while the user was not a member (after their
  ``participant:left``, before a new ``participant:joined``), which a removed
  user must never see.

A fault test asserts every count is 0; ``Report.row`` is the line a test prints
(and docs/guarantees.md's fault table quotes).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

__all__ = ["Client", "History", "Report"]


@dataclass
class Client:
    """One client's deliveries: ``seqs[stream]`` in delivery order."""

    name: str
    user_id: str
    start: dict[str, int] = field(default_factory=dict)
    """Per stream, the seq the client subscribed after (what it already had)."""
    seqs: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Report:
    clients: int
    streams: int
    delivered: int
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    after_removal: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.reordered or self.after_removal)

    def row(self) -> str:
        return (
            f"clients={self.clients} streams={self.streams} delivered={self.delivered} "
            f"lost={self.lost} duplicated={self.duplicated} reordered={self.reordered} "
            f"after_removal={self.after_removal}"
        )


class History:
    def __init__(self) -> None:
        self.clients: list[Client] = []
        self._changed = asyncio.Event()

    def client(self, name: str, user_id: str) -> Client:
        client = Client(name, user_id)
        self.clients.append(client)
        return client

    def recorder(self, client: Client) -> Callable[[str, dict[str, Any]], Any]:
        """A ``"*"`` handler for ``RoomcastClient.on`` (or a raw client's events)."""

        async def record(event: str, payload: dict[str, Any]) -> None:
            seq = payload.get("seq") if isinstance(payload, dict) else None
            if not isinstance(seq, int) or "eventId" not in payload:
                return  # notices (room:subscribed, presence, …) carry no seq
            stream = (
                f"user:{payload['userId']}"
                if event.startswith("notification:")
                else str(payload.get("roomId"))
            )
            self.record(client, stream, seq)

        return record

    def record(self, client: Client, stream: str, seq: int) -> None:
        """Record a delivery by hand (a raw client that sees frames, not handler calls)."""
        client.seqs.setdefault(stream, []).append(seq)
        self._changed.set()

    async def wait_for(self, heads: dict[str, int], within: float = 60) -> None:
        """Until every client that follows a stream has delivered up to its ``heads`` seq."""

        def behind() -> list[str]:
            return [
                f"{c.name} {stream} at {max(c.seqs.get(stream, [c.start[stream]]))} of {head}"
                for c in self.clients
                for stream, head in heads.items()
                if stream in c.start and max(c.seqs.get(stream, [c.start[stream]])) < head
            ]

        try:
            async with asyncio.timeout(within):
                while behind():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            late = behind()
            raise AssertionError(f"{len(late)} followers behind: {late[:10]}") from None

    async def check(self, conn: asyncpg.Connection) -> Report:
        streams = sorted({s for c in self.clients for s in c.start})
        report = Report(
            clients=len(self.clients),
            streams=len(streams),
            delivered=sum(len(v) for c in self.clients for v in c.seqs.values()),
        )
        for stream in streams:
            rows = await conn.fetch(
                "SELECT seq, type, coalesce(data->'participant'->>'userId', data->>'userId') AS who"
                " FROM events WHERE stream_id = $1 ORDER BY seq",
                stream,
            )
            for client in self.clients:
                if stream in client.start:
                    _check_one(report, client, stream, rows)
        return report


def _check_one(report: Report, client: Client, stream: str, rows: list[asyncpg.Record]) -> None:
    start = client.start[stream]
    delivered = client.seqs.get(stream, [])
    hidden = _hidden(rows, client.user_id) if not stream.startswith("user:") else set()
    expected = {r["seq"] for r in rows if r["seq"] > start and r["seq"] not in hidden}
    counts = Counter(delivered)
    lost = sorted(expected - counts.keys())
    dupes = sorted(s for s, n in counts.items() if n > 1)
    reordered = sum(1 for a, b in itertools.pairwise(delivered) if b < a)
    leaked = sorted(s for s in counts if s in hidden)
    report.lost += len(lost)
    report.duplicated += sum(counts[s] - 1 for s in dupes)
    report.reordered += reordered
    report.after_removal += len(leaked)
    for label, values in (("lost", lost), ("duplicated", dupes), ("after removal", leaked)):
        if values:
            report.problems.append(f"{client.name} {stream} {label}: {values[:10]}")
    if reordered:
        report.problems.append(f"{client.name} {stream} reordered: {reordered} deliveries")


def _hidden(rows: list[asyncpg.Record], user_id: str) -> set[int]:
    """Seqs a user may not see: after their ``participant:left`` (which they see)
    until their next ``participant:joined``. History before their first join is
    the room's record and visible (gateway.delivery.Visibility's policy)."""
    member = True
    hidden: set[int] = set()
    for row in rows:
        ours = row["who"] == user_id
        if ours and row["type"] == "participant:joined":
            member = True
        if not member:
            hidden.add(row["seq"])
        if ours and row["type"] == "participant:left":
            member = False
    return hidden
