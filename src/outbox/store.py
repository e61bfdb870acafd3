"""The event store: load a stream's state, append events with their outbox rows, read the log.

An append is ONE statement (so one round trip and one implicit transaction):
the stream head's compare-and-set, the events, their outbox rows, the
idempotency key and, now and then, a snapshot. Either all of it commits or none.
Everything it writes (seqs, hashes, event ids, the result to remember) is
computed before it, from the state the command was decided on.

Appends to existing streams that wait together are grouped (``group_commit``):
one statement and one transaction for several streams, each with its own
compare-and-set, so a stale stream is refused alone.

No ambiguous outcome: when the connection fails while an append is in
PostgreSQL's hands (sent, no answer), it may have committed. The event ids are
known before the statement, so the store settles it on another connection:
it ends the backend that ran it (so it cannot commit later), then looks the
first event id up, and answers the real result: applied, or a
``ServiceUnavailable`` with ``written: false``. Only when the database stays
out of reach for ``settle_seconds`` is the answer ``written: "unknown"``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
import msgspec
import structlog

from roomcast.domain import room
from roomcast.domain.decider import Decider
from roomcast.domain.errors import ServiceUnavailable
from roomcast.domain.events import event_name
from roomcast.metrics import EVENTS_APPENDED
from roomcast.outbox import codec, sql
from roomcast.outbox.errors import HeadLocked, InDoubt, StaleVersion, map_db_errors
from roomcast.outbox.group_commit import GroupCommit

__all__ = [
    "Appended",
    "ChainRow",
    "EventStore",
    "Loaded",
    "PendingAppend",
    "Remembered",
    "StreamHead",
    "Write",
    "append_many_statement",
    "append_statement",
    "prepare",
]

S = TypeVar("S")
T = TypeVar("T")

log = structlog.get_logger("roomcast.outbox")

_state_decoders: dict[object, msgspec.json.Decoder[Any]] = {}


def _state_decoder(decider: Decider[Any, Any, Any]) -> msgspec.json.Decoder[Any]:
    decoder = _state_decoders.get(decider.state_type)
    if decoder is None:
        decoder = _state_decoders[decider.state_type] = msgspec.json.Decoder(decider.state_type)
    return decoder


class Loaded(msgspec.Struct, Generic[S], frozen=True):
    """A stream's state as of ``version``, with the hash-chain head at that version."""

    stream_id: str
    version: int
    last_hash: bytes
    state: S


class PendingAppend(msgspec.Struct, frozen=True):
    """Rows ready to write: decided events, numbered, hashed and enveloped."""

    stream_id: str
    expected_version: int
    new_version: int
    last_hash: bytes
    actor_id: str | None
    seqs: list[int]
    event_ids: list[str]
    """Canonical UUID text: asyncpg encodes it for the ``uuid`` column."""
    types: list[str]
    datas: list[str]
    recorded_ats: list[object]
    prev_hashes: list[bytes]
    hashes: list[bytes]
    envelopes: list[codec.Envelope]
    state: Any
    state_version: int
    """The decider's state version: what a snapshot of ``state`` is recorded as."""


class Remembered(msgspec.Struct, frozen=True):
    """An idempotency key to store with the append, and the result to answer retries with."""

    principal: str
    key: str
    fingerprint: bytes
    result: bytes


class Write(msgspec.Struct, frozen=True):
    """One append as the store writes it: the rows, the key to remember, the snapshot."""

    pending: PendingAppend
    remember: Remembered | None
    snapshot: str | None
    """The state as JSON when this append crosses a multiple of ``snapshot_every``."""


class Appended(msgspec.Struct, frozen=True):
    version: int
    envelopes: list[codec.Envelope]


def prepare(
    loaded: Loaded[Any],
    events: Sequence[Any],
    *,
    actor_id: str | None,
    new_event_id: Callable[[], uuid.UUID | str],
    decider: Decider[Any, Any, Any] = room.ROOMS,
) -> PendingAppend:
    """Number, encode, chain and envelope ``events`` on top of ``loaded``. Pure but for ids."""
    seqs: list[int] = []
    event_ids: list[str] = []
    types: list[str] = []
    datas: list[str] = []
    recorded_ats: list[object] = []
    prev_hashes: list[bytes] = []
    hashes: list[bytes] = []
    envelopes: list[codec.Envelope] = []
    prev = loaded.last_hash
    state = loaded.state
    for offset, event in enumerate(events, start=1):
        seq = loaded.version + offset
        event_id_text = str(new_event_id())  # formatted once: row, hash and broadcast
        data = codec.encode_event(event)
        type_ = event_name(event)
        digest = codec.chain_hash(
            prev,
            codec.canonical_bytes(
                stream_id=loaded.stream_id,
                seq=seq,
                event_id=event_id_text,
                type_=type_,
                data=data,
                actor_id=actor_id,
                recorded_at=event.timestamp,
            ),
        )
        seqs.append(seq)
        event_ids.append(event_id_text)
        types.append(type_)
        datas.append(data.decode())
        recorded_ats.append(event.timestamp)
        prev_hashes.append(prev)
        hashes.append(digest)
        envelopes.append(codec.envelope(type_, event_id_text, seq, data))
        state = decider.evolve(state, event)
        prev = digest
    return PendingAppend(
        stream_id=loaded.stream_id,
        expected_version=loaded.version,
        new_version=loaded.version + len(events),
        last_hash=prev,
        actor_id=actor_id,
        seqs=seqs,
        event_ids=event_ids,
        types=types,
        datas=datas,
        recorded_ats=recorded_ats,
        prev_hashes=prev_hashes,
        hashes=hashes,
        envelopes=envelopes,
        state=state,
        state_version=decider.state_version,
    )


def append_statement(
    pending: PendingAppend,
    remember: Remembered | None = None,
    snapshot: str | None = None,
    *,
    nowait: bool = False,
) -> tuple[object, ...]:
    """The append as ``(sql, *parameters)``: one statement, one implicit transaction.

    ``nowait``: fail with ``LockNotAvailableError`` rather than wait for the head row.
    """
    if pending.expected_version == 0:
        statement = sql.APPEND_NEW
    else:
        statement = sql.APPEND_EXISTING_NOWAIT if nowait else sql.APPEND_EXISTING
    return (
        statement,
        pending.stream_id,
        pending.expected_version,
        pending.new_version,
        pending.last_hash,
        pending.actor_id,
        pending.seqs,
        pending.event_ids,
        pending.types,
        pending.datas,
        pending.recorded_ats,
        pending.prev_hashes,
        pending.hashes,
        None if remember is None else remember.principal,
        None if remember is None else remember.key,
        None if remember is None else remember.fingerprint,
        None if remember is None else remember.result.decode(),
        snapshot,
        pending.state_version,
    )


def append_many_statement(writes: Sequence[Write]) -> tuple[object, ...]:
    """Appends to distinct existing streams as ``(sql, *parameters)``: one statement.

    Sorted by stream id, so concurrent batches lock the head rows in one order.
    """
    heads: tuple[list[Any], ...] = ([], [], [], [])
    rows: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [], [])
    keys: tuple[list[Any], ...] = ([], [], [], [], [])
    snapshots: tuple[list[Any], ...] = ([], [], [])
    for write in sorted(writes, key=lambda w: w.pending.stream_id):
        p = write.pending
        stream = p.stream_id
        for column, value in zip(
            heads, (stream, p.expected_version, p.new_version, p.last_hash), strict=True
        ):
            column.append(value)
        count = len(p.seqs)
        columns: tuple[list[Any], ...] = (
            [stream] * count,
            p.seqs,
            p.event_ids,
            p.types,
            p.datas,
            [p.actor_id] * count,
            p.recorded_ats,
            p.prev_hashes,
            p.hashes,
        )
        for column, values in zip(rows, columns, strict=True):
            column.extend(values)
        r = write.remember
        if r is not None:
            for column, value in zip(
                keys, (stream, r.principal, r.key, r.fingerprint, r.result.decode()), strict=True
            ):
                column.append(value)
        if write.snapshot is not None:
            snapshots[0].append(stream)
            snapshots[1].append(write.snapshot)
            snapshots[2].append(p.state_version)
    return (sql.APPEND_MANY, *heads, *rows, *keys, *snapshots)


class ChainRow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One event's hashed columns (docs/audit.md): ``data`` is the stored JSON text."""

    seq: int
    event_id: str
    type: str
    data: str
    actor_id: str | None
    recorded_at: datetime
    prev_hash: str
    hash: str


class StreamHead(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A stream's head seq and chain head, and its rows waiting in the outbox."""

    stream_id: str
    head_seq: int
    chain_head: str
    outbox_depth: int
    outbox_oldest_seconds: float


def _initial() -> Any:
    return None  # every decider's state before its stream's first event


class EventStore:
    """asyncpg adapter for streams, events, outbox rows, idempotency keys and snapshots.

    Does not own the pool: whoever created it closes it.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        snapshot_every: int = 100,
        append_batch: int = 16,
        settle_seconds: float = 10.0,
    ) -> None:
        """``append_batch``: most appends per transaction (group commit); 1 writes each alone.
        ``settle_seconds``: how long an append whose connection failed is looked up
        before its outcome is reported unknown."""
        self._pool = pool
        self._snapshot_every = snapshot_every
        self._settle_seconds = settle_seconds
        self._group: GroupCommit[Write] | None = (
            GroupCommit(
                self._write_one,
                self._write_many,
                lambda write: write.pending.stream_id,
                max_batch=append_batch,
            )
            if append_batch > 1
            else None
        )

    async def load(self, stream_id: str) -> Loaded[room.State]:
        """A room's state at the stream's head."""
        return await self.load_stream(stream_id, room.ROOMS)

    async def load_stream(self, stream_id: str, decider: Decider[Any, Any, S]) -> Loaded[S]:
        """State at the stream's head: the latest snapshot of the decider's state version
        plus the events after it (all of them when there is none)."""
        with map_db_errors():
            row = await self._pool.fetchrow(sql.LOAD, stream_id, decider.state_version)
        if row is None:
            return Loaded(
                stream_id=stream_id, version=0, last_hash=codec.ZERO_HASH, state=_initial()
            )
        state: S = (
            _initial()
            if row["snapshot"] is None
            else _state_decoder(decider).decode(row["snapshot"])
        )
        for data in row["tail"]:
            state = decider.evolve(state, decider.decode_event(data))
        version: int = row["version"]
        if len(row["tail"]) >= self._snapshot_every and state is not None:
            await self._resnapshot(stream_id, version, state, decider.state_version)
        return Loaded(stream_id=stream_id, version=version, last_hash=row["last_hash"], state=state)

    async def _resnapshot(
        self, stream_id: str, version: int, state: Any, state_version: int
    ) -> None:
        """Snapshot a state whose load folded a whole interval or more (sql.RESNAPSHOT).
        A cache fill: when it fails the load still stands, and the next one tries again."""
        snapshot = msgspec.json.encode(state).decode()
        try:
            with map_db_errors():
                await self._pool.execute(
                    sql.RESNAPSHOT, stream_id, version, snapshot, state_version
                )
        except ServiceUnavailable as exc:
            log.warning("resnapshot_failed", stream_id=stream_id, error=repr(exc))
            return
        log.debug("resnapshot", stream_id=stream_id, version=version, state_version=state_version)

    async def head(self, stream_id: str) -> int:
        """The stream's version (0 if it does not exist): one indexed lookup."""
        with map_db_errors():
            version = await self._pool.fetchval(sql.HEAD, stream_id)
        return 0 if version is None else int(version)

    async def heads(self, stream_ids: list[str]) -> dict[str, int]:
        """The versions of the streams that exist among ``stream_ids``: one statement."""
        with map_db_errors():
            rows = await self._pool.fetch(sql.HEADS, stream_ids)
        return {r[0]: int(r[1]) for r in rows}

    async def append(self, pending: PendingAppend, remember: Remembered | None = None) -> Appended:
        """Write ``pending`` atomically; raise ``StaleVersion`` if the stream moved."""
        snapshot: str | None = None
        if pending.new_version // self._snapshot_every > (
            pending.expected_version // self._snapshot_every
        ):
            snapshot = msgspec.json.encode(pending.state).decode()
        write = Write(pending=pending, remember=remember, snapshot=snapshot)
        # A new stream is created alone: its head row is an INSERT, not a compare-and-set.
        try:
            if self._group is None or pending.expected_version == 0:
                applied = await self._write_one(write)
            else:
                applied = await self._group.write(write)
        except InDoubt as exc:
            applied = await self._settle(pending, exc)
        if not applied:
            raise StaleVersion(f"{pending.stream_id} is not at version {pending.expected_version}")
        EVENTS_APPENDED.inc(len(pending.envelopes))
        return Appended(version=pending.new_version, envelopes=pending.envelopes)

    async def _write_one(self, write: Write) -> bool:
        statement = append_statement(write.pending, write.remember, write.snapshot)
        version = await self._sent(lambda conn: conn.fetchval(*statement))
        return version is not None

    async def _write_many(self, writes: list[Write]) -> set[str]:
        if len(writes) == 1:  # the lone-write statement: lighter to build and plan
            write = writes[0]
            statement = append_statement(write.pending, write.remember, write.snapshot, nowait=True)
            version = await self._sent(lambda conn: conn.fetchval(*statement))
            return set() if version is None else {write.pending.stream_id}
        rows = await self._sent(lambda conn: conn.fetch(*append_many_statement(writes)))
        return {row[0] for row in rows}

    async def _sent(self, run: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run a write on a pooled connection; a failure once it may have reached
        PostgreSQL is ``InDoubt`` (with the backend's pid), before that a plain 503."""
        with map_db_errors():
            conn = await self._pool.acquire()
        try:
            pid = conn.get_server_pid()
            try:
                with map_db_errors():
                    try:
                        return await run(conn)
                    except asyncpg.LockNotAvailableError as exc:  # NOWAIT: sql.APPEND_MANY
                        raise HeadLocked(str(exc)) from exc
            except ServiceUnavailable as exc:
                raise InDoubt(exc, pid) from exc
        finally:
            await self._release(conn)

    async def _release(self, conn: asyncpg.Connection) -> None:
        # A failed reset has already terminated the connection (asyncpg then opens
        # a new one): it must not replace the write's own outcome.
        try:
            await self._pool.release(conn)
        except Exception as exc:
            log.debug("connection_release_failed", error=repr(exc))

    async def _settle(self, pending: PendingAppend, doubt: InDoubt) -> bool:
        """Whether ``pending``, whose connection failed, committed (True), or raise a
        503 that says whether anything was written."""
        deadline = time.monotonic() + self._settle_seconds
        delay = 0.05
        while True:
            try:
                async with self._pool.acquire() as conn:
                    if doubt.server_pid is not None:
                        await conn.execute(sql.END_BACKEND, doubt.server_pid, 5_000)
                    committed = bool(await conn.fetchval(sql.EVENT_EXISTS, pending.event_ids[0]))
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    log.warning(
                        "append_outcome_unknown", stream_id=pending.stream_id, error=repr(exc)
                    )
                    raise ServiceUnavailable(
                        "the database connection failed during the write and the database "
                        "is still unreachable: whether it was applied is unknown",
                        {**doubt.details, "written": "unknown"},
                    ) from doubt
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            log.info("append_settled", stream_id=pending.stream_id, committed=committed)
            if committed:
                return True
            raise ServiceUnavailable(
                "the database connection failed during the write; nothing was written",
                {**doubt.details, "written": False},
            ) from doubt

    async def read(self, stream_id: str, after: int, limit: int) -> list[codec.Envelope]:
        """Up to ``limit`` events with ``seq > after``, in seq order, as envelopes."""
        with map_db_errors():
            rows = await self._pool.fetch(sql.READ, stream_id, after, limit)
        raw = msgspec.Raw
        return [codec.Envelope(event=r[0], payload=raw(r[1])) for r in rows]

    async def read_frame(self, stream_id: str, after: int, limit: int) -> tuple[int, int, str]:
        """The events ``after < seq <= after + limit`` as one ``room:events`` array.

        Returns ``(count, last seq, array)``: the JSON array (``[…]``) of their
        payloads in seq order, each with ``"replayed":true`` first, as ``Outlet``
        marks a replayed event. ``(0, after, "[]")`` when there are none.
        """
        with map_db_errors():
            row = await self._pool.fetchrow(sql.READ_FRAME, stream_id, after, limit)
        if row is None or not row[0]:
            return 0, after, "[]"
        return int(row[0]), int(row[1]), str(row[2])

    async def find_remembered(self, principal: str, key: str) -> tuple[bytes, str, bytes] | None:
        """``(fingerprint, stream_id, result)`` stored under an idempotency key, if any."""
        with map_db_errors():
            row = await self._pool.fetchrow(sql.FIND_IDEMPOTENT, principal, key)
        if row is None:
            return None
        return bytes(row["fingerprint"]), row["stream_id"], row["result"].encode()

    async def member_after(self, stream_id: str, user_id: str, seq: int) -> bool:
        """Whether ``user_id`` was a member right after ``seq`` (not since left or removed)."""
        with map_db_errors():
            last = await self._pool.fetchval(sql.LAST_MEMBERSHIP_EVENT, stream_id, seq, user_id)
        return bool(last != "participant:left")

    async def membership_events(
        self, stream_id: str, user_id: str, after: int, head: int
    ) -> list[tuple[int, str]]:
        """``user_id``'s own ``participant:joined``/``left`` events in ``after < seq <= head``."""
        with map_db_errors():
            rows = await self._pool.fetch(sql.MEMBERSHIP_EVENTS, stream_id, after, head, user_id)
        return [(int(r[0]), str(r[1])) for r in rows]

    async def outbox_backlog(self) -> tuple[int, float]:
        """``(rows waiting for a relay, age in seconds of the oldest)``, database-wide."""
        with map_db_errors():
            row = await self._pool.fetchrow(sql.OUTBOX_BACKLOG)
        return int(row["depth"]), float(row["oldest_seconds"])

    async def reaction_backlog(self) -> tuple[int, int]:
        """``(reactions waiting to run, dead letters)``, database-wide."""
        with map_db_errors():
            row = await self._pool.fetchrow(sql.REACTION_BACKLOG)
        return int(row["queued"]), int(row["dead"])

    async def head_and_member(
        self, stream_id: str, user_id: str, seq: int | None
    ) -> tuple[int, bool]:
        """``head`` and ``member_after(stream_id, user_id, seq)`` (``seq`` None: the head),
        read together in one statement (one round trip for a subscribe)."""
        with map_db_errors():
            row = await self._pool.fetchrow(sql.HEAD_AND_MEMBERSHIP, stream_id, seq, user_id)
        if row is None:
            return 0, True
        return int(row[0]), row[1] != "participant:left"

    async def read_chain(self, stream_id: str, after: int, limit: int) -> list[ChainRow]:
        """Up to ``limit`` events with ``seq > after``, with the columns their hashes cover."""
        with map_db_errors():
            rows = await self._pool.fetch(sql.READ_CHAIN, stream_id, after, limit)
        return [
            ChainRow(
                seq=r["seq"],
                event_id=r["event_id"],
                type=r["type"],
                data=r["data"],
                actor_id=r["actor_id"],
                recorded_at=r["recorded_at"].astimezone(UTC),
                prev_hash=bytes(r["prev_hash"]).hex(),
                hash=bytes(r["hash"]).hex(),
            )
            for r in rows
        ]

    async def stream_heads(self, stream_ids: Sequence[str]) -> list[StreamHead]:
        """Head seq, chain head and outbox backlog of each existing stream named."""
        with map_db_errors():
            rows = await self._pool.fetch(sql.STREAM_HEADS, list(stream_ids))
        return [
            StreamHead(
                stream_id=r["stream_id"],
                head_seq=r["version"],
                chain_head=bytes(r["last_hash"]).hex(),
                outbox_depth=r["depth"],
                outbox_oldest_seconds=round(r["oldest_seconds"], 3),
            )
            for r in rows
        ]

    async def ping(self) -> None:
        with map_db_errors():
            await self._pool.fetchval(sql.PING)
