"""What connection state recovery keeps in PostgreSQL: sessions, and the relay's batches.

* ``socket_sessions``: one row per recoverable socket session (its ``pid``):
  the user and, per room, the seq its subscription started from. Written when
  a subscription starts or ends, never per delivered event; it expires
  ``SESSION_TTL_SECONDS`` after the last write.
* ``relay_batches``: the relay's publication order, one row per published
  batch (its rooms and seqs in publication order), written with the batch's
  DELETE from the outbox (``sql.RELAY_DONE``) and kept ``BATCH_TTL_SECONDS``.

Design: docs/decisions/0009-connection-state-recovery.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import msgspec

from roomcast.outbox.errors import map_db_errors

__all__ = [
    "BATCH_TTL_SECONDS",
    "SESSION_TTL_SECONDS",
    "RecoveryLog",
    "RoomPosition",
    "StoredSession",
]

SESSION_TTL_SECONDS = 2 * 3600
"""A session can be recovered for two hours after its last subscribe or unsubscribe."""
BATCH_TTL_SECONDS = 3 * 3600
"""Batches outlive sessions, so a session's offset can still be resolved."""

_LOAD = """
    SELECT user_id, rooms::text FROM socket_sessions WHERE pid = $1 AND expires_at > now()
"""

_SAVE = """
    INSERT INTO socket_sessions (pid, user_id, rooms, expires_at)
    VALUES ($1, $2, $3::jsonb, now() + make_interval(secs => $4))
    ON CONFLICT (pid) DO UPDATE
        SET rooms = EXCLUDED.rooms, expires_at = EXCLUDED.expires_at
        WHERE socket_sessions.user_id = EXCLUDED.user_id
"""

# For each room: its head, its first event published after the position
# ($1, $2) (NULL: none), its first event not yet published (NULL: none), and
# the oldest batch still kept. One statement, one snapshot: the relay deletes
# a batch's outbox rows and records the batch in one transaction, so an event
# is in exactly one of the two places.
# "Published after" is the batches numbered after the position's, and, because
# several relays publish side by side (docs/decisions/0022-relay-partitions.md),
# also those numbered before it but acknowledged after it was numbered: another
# relay may still have been sending them when the client got its offset. A
# batch acknowledged earlier was sent before the offset's batch was even read.
# (With one relay every earlier batch is acknowledged before the next is read.)
_RESOLVE = """
    WITH pub AS (
        SELECT t.stream_id, min(t.seq) AS seq
        FROM relay_batches b
        CROSS JOIN LATERAL unnest(b.stream_ids, b.seqs) WITH ORDINALITY AS t(stream_id, seq, idx)
        WHERE $1::bigint IS NOT NULL
          AND (b.batch > $1 OR (b.batch = $1 AND t.idx > $2) OR (b.batch < $1 AND b.acked > $1))
          AND t.stream_id = ANY($3::text[])
        GROUP BY t.stream_id
    ), pend AS (
        SELECT o.stream_id, min(e.seq) AS seq
        FROM outbox o JOIN events e ON e.global_id = o.global_id
        WHERE o.stream_id = ANY($3::text[])
        GROUP BY o.stream_id
    )
    SELECT r.stream_id, coalesce(s.version, 0) AS head, pub.seq AS published,
           pend.seq AS pending, (SELECT min(batch) FROM relay_batches) AS oldest
    FROM unnest($3::text[]) AS r(stream_id)
    LEFT JOIN streams s ON s.stream_id = r.stream_id
    LEFT JOIN pub ON pub.stream_id = r.stream_id
    LEFT JOIN pend ON pend.stream_id = r.stream_id
"""

_EXPIRE_SESSIONS = "DELETE FROM socket_sessions WHERE expires_at < now()"
_EXPIRE_BATCHES = "DELETE FROM relay_batches WHERE published_at < now() - make_interval(secs => $1)"

_rooms_decoder = msgspec.json.Decoder(dict[str, int])


@dataclass(frozen=True, slots=True)
class StoredSession:
    pid: str
    user_id: str
    rooms: dict[str, int]
    """Per room: the seq its subscription started from."""


@dataclass(frozen=True, slots=True)
class RoomPosition:
    head: int
    next_unsent: int | None
    """The room's first event after the offset's base, or not yet published."""
    base_usable: bool


class RecoveryLog:
    """Sessions and the relay's batches, for ``gateway.recovery``."""

    def __init__(self, pool: asyncpg.Pool, *, ttl_seconds: float = SESSION_TTL_SECONDS) -> None:
        self._pool = pool
        self._ttl = float(ttl_seconds)

    async def load(self, pid: str) -> StoredSession | None:
        with map_db_errors():
            row = await self._pool.fetchrow(_LOAD, pid)
        if row is None:
            return None
        return StoredSession(pid=pid, user_id=row[0], rooms=_rooms_decoder.decode(row[1]))

    async def save(self, pid: str, user_id: str, rooms: dict[str, int]) -> None:
        """Store the session's rooms (a pid never changes hands: another user's row stays)."""
        with map_db_errors():
            await self._pool.execute(
                _SAVE, pid, user_id, msgspec.json.encode(rooms).decode(), self._ttl
            )

    async def resolve(
        self, base: tuple[int, int] | None, rooms: list[str]
    ) -> dict[str, RoomPosition]:
        batch, index = base if base is not None else (None, 0)
        with map_db_errors():
            rows = await self._pool.fetch(_RESOLVE, batch, index, rooms)
        out: dict[str, RoomPosition] = {}
        for row in rows:
            firsts = [s for s in (row["published"], row["pending"]) if s is not None]
            oldest = row["oldest"]
            out[row["stream_id"]] = RoomPosition(
                head=int(row["head"]),
                next_unsent=int(min(firsts)) if firsts else None,
                base_usable=batch is not None and oldest is not None and batch >= oldest,
            )
        return out

    async def expire(self, batch_ttl_seconds: float = BATCH_TTL_SECONDS) -> tuple[int, int]:
        """Delete expired sessions and old batches; returns how many of each."""
        with map_db_errors():
            sessions = await self._pool.execute(_EXPIRE_SESSIONS)
            batches = await self._pool.execute(_EXPIRE_BATCHES, float(batch_ttl_seconds))
        return int(sessions.split()[-1]), int(batches.split()[-1])
