"""The audit's reads: one connection of its own, read-only queries, rows streamed in seq order.

Every failure a user can cause (unreachable server, wrong database, unknown
room) becomes an ``AuditError`` whose message is one readable line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import msgspec

from roomcast.domain.notifications import owner_of

__all__ = [
    "AuditError",
    "Head",
    "LogFilter",
    "connected",
    "head",
    "heads",
    "log_query",
    "pages",
    "revealed_seed",
    "rooms",
]

_COLUMNS = "seq, event_id, type, data::text, actor_id, recorded_at, prev_hash, hash"

PAGE_COLUMNS = (
    "seq, convert_to(event_id::text, 'UTF8'), type, convert_to(data::text, 'UTF8'),"
    " actor_id, recorded_at, prev_hash, hash"
)
"""``Chain.extend``'s columns: those of ``Row``, the event id and data as UTF-8 bytes
(the database is UTF8; ``convert_to`` copies them), which is what gets hashed."""

# One page is a range of seqs, ($2, $3]: its cost is the page's, whatever plan the
# planner picks. A statement over the whole room (a cursor, or `seq > $2 LIMIT n`)
# was planned, with statistics that lagged behind a bulk load, as a bitmap scan
# and an on-disk sort of every row left, for each page.
_PAGE = (
    f"SELECT {PAGE_COLUMNS} FROM events"
    " WHERE stream_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq"
)

# The index's ends: where the pages start and end, so that no row is left out
# (one before seq 1 or past the stream head included: the chain names it).
_BOUNDS = "SELECT min(seq), max(seq) FROM events WHERE stream_id = $1"

PAGE_ROWS = 5000
"""Rows per page of ``pages``: a few MB, so two in flight stay small."""

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


async def pages(
    conn: asyncpg.Connection, room_id: str, size: int | None = None
) -> AsyncIterator[list[asyncpg.Record]]:
    """The room's events in seq order, in pages of ``size`` (``PAGE_ROWS``) seqs.

    Inside a transaction: the pages are one snapshot.

    Rows are in ``PAGE_COLUMNS``. The next page is asked for before this one is
    handed out, so PostgreSQL reads and sends it while the caller checks this
    one: the verifier's time is then nearer the larger of the two than their
    sum (bench P7).
    """
    size = size or PAGE_ROWS
    bounds = await conn.fetchrow(_BOUNDS, room_id)
    if bounds[0] is None:
        return
    after, last = min(bounds[0] - 1, 0), bounds[1]
    page: list[asyncpg.Record] = []
    ahead: asyncio.Future[list[asyncpg.Record]] | None = None
    try:
        while after < last or page:
            if after < last:
                ahead = asyncio.ensure_future(conn.fetch(_PAGE, room_id, after, after + size))
                after += size
                await asyncio.sleep(0)  # one loop turn: `ahead` sends its query now
            if page:  # a range may be empty where seqs are missing; the chain says so
                yield page
            page, ahead = (await ahead if ahead is not None else []), None
    finally:
        if ahead is not None:  # the caller stopped early: let the query end, unread
            with contextlib.suppress(Exception):
                await ahead


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
