"""The audit's reads: one connection of its own, read-only queries, rows streamed in seq order.

Every failure a user can cause (unreachable server, wrong database, unknown
room) becomes an ``AuditError`` whose message is one readable line.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import msgspec

from roomcast.audit.chain import Row
from roomcast.domain.notifications import owner_of

__all__ = [
    "AuditError",
    "Head",
    "LogFilter",
    "connected",
    "head",
    "heads",
    "log_query",
    "revealed_seed",
    "rooms",
    "rows",
]

_COLUMNS = "seq, event_id, type, data::text, actor_id, recorded_at, prev_hash, hash"

# (stream_id, seq) is unique, so this walks that index: no sort.
ROWS = f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY seq"

_HEAD = "SELECT stream_id, version, last_hash FROM streams WHERE stream_id = $1"
_HEADS = "SELECT stream_id, version, last_hash FROM streams ORDER BY stream_id"

_REVEALS = """
    SELECT data::text FROM events
    WHERE stream_id = $1 AND type IN ('room:status_changed', 'room:deleted')
    ORDER BY seq
"""

_ROOMS = """
    SELECT s.stream_id, s.version,
           (SELECT count(*) FROM events e WHERE e.stream_id = s.stream_id) AS events,
           (SELECT max(e.recorded_at) FROM events e WHERE e.stream_id = s.stream_id) AS last,
           (SELECT e.data -> 'room' ->> 'name' FROM events e
             WHERE e.stream_id = s.stream_id AND e.type IN ('room:created', 'room:updated')
             ORDER BY e.seq DESC LIMIT 1) AS name,
           (SELECT CASE WHEN e.type = 'room:deleted' THEN 'deleted'
                        ELSE e.data ->> 'newStatus' END
              FROM events e
             WHERE e.stream_id = s.stream_id
               AND e.type IN ('room:status_changed', 'room:deleted')
             ORDER BY e.seq DESC LIMIT 1) AS status
    FROM streams s
    ORDER BY last DESC NULLS LAST, s.stream_id
"""

_reveal_decoder = msgspec.json.Decoder(dict[str, object])


class AuditError(Exception):
    """A failure to report in one line (exit status 1)."""


@dataclass(frozen=True, slots=True)
class Head:
    stream_id: str
    version: int
    last_hash: bytes


@dataclass(frozen=True, slots=True)
class LogFilter:
    """``roomcast audit log`` / ``follow`` filters; every bound is inclusive but ``after_seq``."""

    types: list[str] = field(default_factory=list)
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int = 0
    until_seq: int | None = None


@dataclass(frozen=True, slots=True)
class RoomLine:
    room_id: str
    name: str | None
    status: str
    events: int
    head_seq: int
    last_activity: datetime | None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text and text[0] else type(exc).__name__


@contextlib.asynccontextmanager
async def connected(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection for the audit; ``AuditError`` if the server cannot be reached."""
    try:
        conn = await asyncpg.connect(
            dsn, timeout=10, server_settings={"application_name": "roomcast-audit"}
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise AuditError(f"cannot reach the database: {_reason(exc)}") from None
    try:
        yield conn
    except BrokenPipeError:
        raise  # our stdout's reader went away, not the database
    except asyncpg.UndefinedTableError:
        raise AuditError(
            "the database has no roomcast schema (wrong DATABASE_URL, or run `roomcast migrate`)"
        ) from None
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
        raise AuditError(f"lost the database connection: {_reason(exc)}") from None
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=5)


async def head(conn: asyncpg.Connection, room_id: str) -> Head:
    record = await conn.fetchrow(_HEAD, room_id)
    if record is None:
        raise AuditError(f"no such room: {room_id}")
    return Head(record["stream_id"], record["version"], bytes(record["last_hash"]))


async def heads(conn: asyncpg.Connection) -> list[Head]:
    return [
        Head(r["stream_id"], r["version"], bytes(r["last_hash"])) for r in await conn.fetch(_HEADS)
    ]


async def rows(conn: asyncpg.Connection, room_id: str, prefetch: int = 5000) -> AsyncIterator[Row]:
    """The room's events in seq order, through a server-side cursor (needs a transaction)."""
    async for record in conn.cursor(ROWS, room_id, prefetch=prefetch):
        yield Row._make(record)


async def revealed_seed(conn: asyncpg.Connection, room_id: str) -> bytes | None:
    """The seed the room's log reveals, read ahead so draws can be checked in one pass."""
    for record in await conn.fetch(_REVEALS, room_id):
        try:
            reveal = _reveal_decoder.decode(record[0]).get("seedReveal")
        except msgspec.DecodeError:
            continue  # the chain check reports the row
        if isinstance(reveal, str):
            try:
                return bytes.fromhex(reveal)
            except ValueError:
                return None  # the draw check reports it at its seq
    return None


def log_query(room_id: str, where: LogFilter, limit: int | None) -> tuple[str, list[object]]:
    """``roomcast audit log``'s statement and its parameters."""
    clauses = ["stream_id = $1", "seq > $2"]
    params: list[object] = [room_id, where.after_seq]

    def bind(clause: str, value: object) -> None:
        params.append(value)
        clauses.append(clause.replace("?", f"${len(params)}"))

    if where.types:
        bind("type = ANY(?::text[])", where.types)
    if where.actor is not None:
        bind("actor_id = ?", where.actor)
    if where.since is not None:
        bind("recorded_at >= ?", where.since)
    if where.until is not None:
        bind("recorded_at <= ?", where.until)
    if where.until_seq is not None:
        bind("seq <= ?", where.until_seq)
    sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY seq"
    if limit is not None:
        params.append(limit)
        sql += f" LIMIT ${len(params)}"
    return sql, params


async def rooms(conn: asyncpg.Connection, limit: int | None) -> list[RoomLine]:
    sql = _ROOMS if limit is None else f"{_ROOMS} LIMIT {int(limit)}"
    return [
        RoomLine(
            room_id=r["stream_id"],
            name=r["name"],
            # A user's notification stream has no status; a room starts as draft.
            status=r["status"] or ("inbox" if owner_of(r["stream_id"]) else "draft"),
            events=r["events"],
            head_seq=r["version"],
            last_activity=r["last"],
        )
        for r in await conn.fetch(sql)
    ]
