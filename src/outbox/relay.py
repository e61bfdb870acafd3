"""The relay: publish committed outbox rows to Socket.IO rooms, in per-room seq order.

Design (docs/decisions/0004-relay-cursor.md):

* **No cursor.** Rows are published, then deleted. A transaction that took its
  ids early and commits late is found by the next batch; nothing can be skipped.
* **At-least-once.** If the relay dies between publishing and deleting, the rows
  are published again by whoever takes over; clients drop duplicates by seq.
* **One publish per batch, all or nothing.** The relay hands a whole batch to
  its ``Publisher`` in one call (``publish(events)``; with Redis one pipeline,
  docs/decisions/0023-delivery-by-composition.md). It raises ``PublishFailed``
  when the batch did not wholly reach every node (Redis down): none of its rows
  is acknowledged; they stay in the outbox, are kept aside in memory (the next
  batches read past them, so newer rows still reach this node's sockets), and
  are published again, in ``global_id`` order, once the publisher's backoff
  allows a try (at most 1 s apart); nodes drop the copies of what did get
  through by seq. Past ``max_unacked`` rows kept aside the relay stops reading
  new ones until Redis takes them.
* **One publisher per partition** (docs/decisions/0022-relay-partitions.md).
  Rooms are split into ``partitions`` by a stable hash of the stream id; each
  is an advisory lock on the relay's one session (``partitions.Leases``), so a
  relay whose session ends loses them all at once. Every
  ``rebalance_interval`` each relay looks at the live relays and keeps
  ``ceil(P / live)`` partitions: it gives back extras (a relay joined) and
  takes free ones (a relay died: its partitions move within that interval of
  its session ending). A room is only read by the holder of its partition, so
  its rows go out in seq order across a takeover (the new holder reads what the
  old one did not delete: duplicates, never a hole). With ``partitions=1`` this
  is the single publisher of ADR 0004, with standbys.
* **Reactions are not run here.** A published event that something reacts to
  (``react_to``) moves from the outbox to the reaction queue in the statement
  that deletes its row (``sql.RELAY_DONE_REACTING``); the reactor
  (``service/reactions.py``) runs it apart, so a failing reaction never holds
  up delivery.
* **Wake-ups** come from an in-process signal (``wake()``, called after each
  commit in this process) and from LISTEN/NOTIFY (other processes), and a short
  poll backs both up, so a lost notification only delays, never loses.
* **The outbox is a queue table**: every command inserts rows that the relay
  deletes moments later. Left to autovacuum (which looks at a database once a
  minute by default) the dead rows pile up in its heap and indexes and every
  append and every batch walks past them: P1 at concurrency 1 lost ~30 % within
  seconds. The publishing relay vacuums it itself, every ``vacuum_every`` rows
  deleted and at most once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import asyncpg
import msgspec
import structlog

from roomcast.outbox import sql
from roomcast.outbox.partitions import Leases

__all__ = [
    "QUEUE_PLAN_SETTINGS",
    "RELAY_LOCK",
    "Outgoing",
    "PublishFailed",
    "Publisher",
    "Relay",
    "RelayStats",
]

log = structlog.get_logger("roomcast.relay")

RELAY_LOCK = 0x726F6F6D72656C79  # "roomrely"
"""Held exclusively by a relay of before partitions (ADR 0004), shared by the
partitioned ones: the two kinds never publish side by side during an upgrade."""

_DEAD_PEER_SETTINGS = {
    # The server ends the session of a relay that vanished without closing its
    # socket (host down, cable cut) after a few seconds, not the kernel's hours:
    # its partitions are free again within the takeover bound.
    "tcp_keepalives_idle": "1",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "2",
    "tcp_user_timeout": "3000",
}

QUEUE_PLAN_SETTINGS = {
    # Every statement of this session reads a few hundred outbox rows in primary
    # key order and looks each event up by its key. The outbox churns faster
    # than its statistics follow, and a filter on the partition hash has none:
    # left to its estimates the planner sorted the whole backlog for a batch,
    # or merge-joined it with all of `events` (ADR 0022 has the measurements).
    # These only penalise the other plans, so nothing here can fail for them.
    "enable_seqscan": "off",
    "enable_sort": "off",
    "enable_mergejoin": "off",
    "enable_hashjoin": "off",
}

_MIN_IDLE_LIMIT = 3.0
"""Seconds: the least a relay's session may sit idle before the server ends it."""
_IDLE_FACTOR = 3

_VACUUM_MIN_INTERVAL = 1.0
"""Seconds between two vacuums of the outbox, however fast rows are deleted."""


class Outgoing(NamedTuple):
    """One relayed event, as the relay hands it to its ``Publisher``."""

    room_id: str
    event: str
    payload: msgspec.Raw
    """The event's wire payload (spliced by the statement, ``sql._WIRE_PAYLOAD``)."""
    offset: str
    """Its position in the relay's publication order, ``"<batch>.<index>"``: the
    offset connection state recovery hands to clients
    (docs/decisions/0009-connection-state-recovery.md)."""


class Publisher(Protocol):
    """Where the relay publishes: this node's sockets, every node through Redis, or both."""

    async def publish(self, events: Sequence[Outgoing]) -> None:
        """Broadcast ``events`` to their rooms, in order.

        Raises:
            PublishFailed: not all of them reached every node; the relay keeps
                every row of the batch and publishes them again (what did get
                through is dropped by seq at the nodes).
        """
        ...


_RETRY_INTERVAL = 0.05
"""Seconds between two tries of the rows a failed publish left, at the fastest (the
publisher's own backoff, up to 1 s, decides whether a try reaches Redis)."""


class _KeepAlive:
    """PINGs the relay's session every ``every`` seconds while a publish runs.

    A long publish (a big fan-out to this node's sockets) is not a stalled
    relay: without a statement the server would end the session as idle
    (``idle_session_timeout``) and the partitions would move. The publish runs
    in the relay's own task (so the rows are acknowledged the moment it
    returns); this task only uses the connection while that one waits.
    """

    def __init__(self, conn: asyncpg.Connection, every: float) -> None:
        self._conn = conn
        self._every = every
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="relay-keepalive")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            self._idle.clear()
            try:
                await self._conn.execute(sql.PING)
            finally:
                self._idle.set()

    async def stop(self) -> None:
        """Stop; the connection is free once this returns (a PING running is let finish)."""
        task = self._task
        if not self._idle.is_set():
            await self._idle.wait()  # the PING's answer is on its way
        # Now in its sleep (or ended): cancelled there, it never touches the connection
        # again; not awaited, so acknowledging the batch does not wait a loop turn.
        task.cancel()
        task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # a failed PING: the connection's next statement fails too


class PublishFailed(Exception):
    """Raised by a ``Publisher`` whose batch did not wholly reach every node: keep its rows.

    ``retry_in``: seconds before a new try can succeed (the publisher's backoff).
    """

    def __init__(self, message: str, *, retry_in: float = 0.0) -> None:
        super().__init__(message)
        self.retry_in = retry_in


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    vacuums: int = 0
    """Times this relay vacuumed the outbox."""
    active: bool = False
    publish_failures: int = 0
    """Rows whose publish failed (each try counts)."""
    unacked: int = 0
    """Rows kept in the outbox now because their publish failed."""
    last_lag_seconds: float = 0.0
    last_batch_at: float = field(default_factory=time.monotonic)
    partitions: tuple[int, ...] = ()
    """The partitions this relay publishes now (``active`` when any)."""
    partition_count: int = 1
    live_relays: int = 0
    """Relays with this partition count at the last look (0 before the first)."""
    mismatched_relays: int = 0
    """Live relays configured with another partition count (none then takes any more)."""


class Relay:
    """Publishes the outbox rows of the partitions it holds. ``run()`` until
    cancelled; run several (processes, nodes) to share the work."""

    def __init__(
        self,
        dsn: str,
        publisher: Publisher,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.25,
        vacuum_every: int = 1000,
        max_unacked: int = 5000,
        react_to: Collection[str] = frozenset(),
        on_reacting: Callable[[], None] | None = None,
        partitions: int = 16,
        rebalance_interval: float = 1.0,
        name: str = "roomcast-relay",
    ) -> None:
        self._dsn = dsn
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._vacuum_every = vacuum_every
        self._deleted_since_vacuum = 0
        self._last_vacuum = 0.0
        self._wake = asyncio.Event()
        self._max_unacked = max_unacked
        self._react_to = frozenset(react_to)
        self._on_reacting = on_reacting
        self._unacked: dict[int, asyncpg.Record] = {}
        """Rows whose publish failed, by global_id: still in the outbox, tried again."""
        self._retry_at = 0.0
        self._retry_in = 0.0
        self._leases = Leases(partitions)
        self._rebalance_interval = rebalance_interval
        self._rebalance_at = 0.0
        self._name = name
        # Every wait of a working relay is bounded by these; a session idle for
        # several times the longest is a relay whose loop stopped (SIGSTOP, a
        # blocked loop): the server ends it, and its partitions are free.
        self._idle_limit = max(
            _MIN_IDLE_LIMIT, _IDLE_FACTOR * max(poll_interval, rebalance_interval)
        )
        self._touch_every = self._idle_limit / _IDLE_FACTOR
        self.stats = RelayStats(partition_count=partitions)
        self.became_active = asyncio.Event()
        """Set while this relay holds at least one partition."""

    async def wait_forever(self) -> None:
        """For a process whose only job is relaying: park until cancelled."""
        await asyncio.Event().wait()

    def is_active(self) -> bool:
        """Whether this relay publishes now (it holds at least one partition)."""
        return self.stats.active

    def holds_all(self) -> bool:
        """Whether this relay publishes every room (no other relay has work)."""
        return self.stats.active and self._leases.holds_all()

    def runs_reactions(self) -> bool:
        """One reactor at a time: the one beside the relay that holds partition 0."""
        return self.stats.active and 0 in self._leases.held

    def wake(self) -> None:
        """Something was committed: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Hold the publisher lock and drain the outbox; reconnect after failures."""
        backoff = 0.1
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database, Redis, a bug: keep relaying after a pause
                self.stats.active = False
                log.warning("relay_failed", error=repr(exc), retry_in=backoff, exc_info=exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.1

    async def _run_once(self) -> None:
        # statement_timeout=0: this session waits on the lock for as long as the
        # active relay lives, and holds it for as long as we do.
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn,
            server_settings={
                "statement_timeout": "0",
                # Another session holding outbox row locks (it should not) makes our
                # DELETE fail after this, and we publish again, rather than wait forever.
                "lock_timeout": "5000",
                "application_name": self._name[:63],
                "idle_session_timeout": str(int(self._idle_limit * 1000)),
                **_DEAD_PEER_SETTINGS,
                **QUEUE_PLAN_SETTINGS,
            },
        )
        try:
            # lock_timeout must not apply here: this waits for an old-style relay.
            await conn.execute("SET lock_timeout = 0")
            await conn.execute("SELECT pg_advisory_lock_shared($1)", RELAY_LOCK)
            await conn.execute("SET lock_timeout = 5000")
            await self._leases.join(conn)
            self._rebalance_at = 0.0
            await conn.add_listener(sql.NOTIFY_CHANNEL, self._on_notify)
            await self._drain_forever(conn)
        finally:
            # The session's locks end with it: whoever takes the partitions next
            # reads the rows kept aside from the outbox again.
            self._leases.forget()
            self._held_changed()
            self._unacked.clear()
            self.stats.unacked = 0
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close(timeout=2))

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    def _held_changed(self) -> None:
        held = tuple(sorted(self._leases.held))
        self.stats.partitions = held
        self.stats.active = bool(held)
        if held and not self.became_active.is_set():
            self.became_active.set()
            log.info("relay_active", partitions=list(held), of=self._leases.count)
        elif not held and self.became_active.is_set():
            self.became_active.clear()
            log.info("relay_standby")

    async def rebalance(self, conn: asyncpg.Connection) -> None:
        """Look at the live relays; give back or take partitions (between batches)."""
        self._rebalance_at = time.monotonic() + self._rebalance_interval
        change = await self._leases.rebalance(conn)
        if change.released:
            # Rows kept aside may belong to a partition given away: its next holder
            # publishes them; ours are read again, in order, by the next batch.
            self._unacked.clear()
            self.stats.unacked = 0
        if change.mismatched and not self.stats.mismatched_relays:
            log.error(
                "relay_partitions_mismatch",
                partitions=self._leases.count,
                other_relays=change.mismatched,
                hint="every relay of a database needs the same ROOMCAST_RELAY_PARTITIONS",
            )
        self.stats.live_relays = change.live
        self.stats.mismatched_relays = change.mismatched
        self._held_changed()
        if change.taken or change.released:
            log.info(
                "relay_partitions",
                held=list(self.stats.partitions),
                taken=list(change.taken),
                released=list(change.released),
                live_relays=change.live,
            )

    async def _drain_forever(self, conn: asyncpg.Connection) -> None:
        while True:
            if conn.is_closed():
                raise asyncpg.InterfaceError("relay lock connection closed")
            if time.monotonic() >= self._rebalance_at:
                await self.rebalance(conn)
            if not self._leases.held:
                # Nothing of ours to publish: the next look may find something.
                await asyncio.sleep(max(self._rebalance_at - time.monotonic(), 0.0))
                continue
            published = await self.drain_once(conn)
            self._deleted_since_vacuum += published
            if (
                self._deleted_since_vacuum >= self._vacuum_every
                and time.monotonic() - self._last_vacuum >= _VACUUM_MIN_INTERVAL
            ):
                await self.vacuum(conn)
            if published < self._batch_size:
                # Caught up: sleep until woken or the poll interval passes (or, with
                # rows whose publish failed, until they are due again).
                self._wake.clear()
                timeout = max(min(self._poll_interval, self._rebalance_at - time.monotonic()), 0.0)
                if self._unacked:
                    timeout = min(timeout, max(self._retry_at - time.monotonic(), 0.0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    async def vacuum(self, conn: asyncpg.Connection) -> None:
        """Reclaim the outbox rows deleted so far (see the module docstring)."""
        self._deleted_since_vacuum = 0
        self._last_vacuum = time.monotonic()
        try:
            await conn.execute(sql.VACUUM_OUTBOX)
        except asyncpg.PostgresError as exc:  # e.g. not the table's owner: autovacuum remains
            log.warning("relay_vacuum_failed", error=str(exc))
            return
        self.stats.vacuums += 1
        log.debug("relay_outbox_vacuumed", seconds=round(time.monotonic() - self._last_vacuum, 4))

    async def drain_once(self, conn: asyncpg.Connection) -> int:
        """Publish one batch, then delete what was published. Returns the rows read.

        Rows kept aside by a failed publish are tried first (in order) when due.
        """
        if self._unacked and time.monotonic() >= self._retry_at:
            retried = [self._unacked[g] for g in sorted(self._unacked)]
            # They reached this node's sockets already (its delivery drops the copies).
            batch = await conn.fetchval(sql.NEXT_BATCH)
            done, slots = await self._publish_rows(conn, retried, batch)
            for row in done:
                del self._unacked[row["global_id"]]
            await self._acknowledge(conn, done, batch, slots)
            self._after_failures()
        if len(self._unacked) >= self._max_unacked:
            return 0  # back-pressure: nothing new until Redis takes what waits
        if not self._leases.holds_all():
            rows = await conn.fetch(
                sql.RELAY_BATCH_PARTITIONS,
                self._batch_size,
                list(self._unacked),
                sorted(self._leases.held),
                self._leases.count,
            )
        elif self._unacked:
            rows = await conn.fetch(sql.RELAY_BATCH_SKIPPING, self._batch_size, list(self._unacked))
        else:
            rows = await conn.fetch(sql.RELAY_BATCH, self._batch_size)
        if not rows:
            return 0
        done, slots = await self._publish_rows(conn, rows, rows[0]["batch"])
        if len(done) < len(rows):
            kept = {row["global_id"] for row in done}
            for row in rows:
                if row["global_id"] not in kept:
                    self._unacked[row["global_id"]] = row
            self._after_failures()
        await self._acknowledge(conn, done, rows[0]["batch"], slots)
        self.stats.batches += 1
        self.stats.last_lag_seconds = float(rows[0]["lag_seconds"])  # the oldest row
        self.stats.last_batch_at = time.monotonic()
        log.debug("relay_batch_published", rows=len(done), kept=len(rows) - len(done))
        return len(rows)

    async def _acknowledge(
        self,
        conn: asyncpg.Connection,
        done: list[asyncpg.Record],
        batch: int,
        slots: tuple[list[str], list[int]],
    ) -> None:
        """Delete published rows from the outbox and record the batch's publication
        order; queue the reacting rows for the reactor, all in one statement."""
        if not done:
            return
        ids = [row["global_id"] for row in done]
        reacting = [row for row in done if row["type"] in self._react_to]
        if reacting:
            await conn.execute(
                sql.RELAY_DONE_REACTING,
                ids,
                batch,
                *slots,
                [row["global_id"] for row in reacting],
                [row["stream_id"] for row in reacting],
            )
            if self._on_reacting is not None:
                self._on_reacting()
        else:
            await conn.execute(sql.RELAY_DONE, ids, batch, *slots)
        self.stats.published += len(done)

    async def _publish_rows(
        self,
        conn: asyncpg.Connection,
        rows: list[asyncpg.Record],
        batch: int,
    ) -> tuple[list[asyncpg.Record], tuple[list[str], list[int]]]:
        """Publish ``rows`` in order as batch ``batch``, in one call to the publisher.

        Returns the rows that reached every node (all of them, or none when the
        publisher raised ``PublishFailed``), and the batch's slots for
        ``sql.RELAY_DONE`` (stream ids and seqs in publication order).
        """
        events = [
            # the payload comes spliced by the statement (sql._WIRE_PAYLOAD)
            Outgoing(row["stream_id"], row["type"], msgspec.Raw(row["payload"]), f"{batch}.{i}")
            for i, row in enumerate(rows, start=1)
        ]
        keepalive = _KeepAlive(conn, self._touch_every)
        try:
            await self._publisher.publish(events)
        except PublishFailed as exc:
            self._retry_in = max(self._retry_in, exc.retry_in)
            self.stats.publish_failures += len(rows)
            log.warning("relay_publish_failed", rows=len(rows), published=0)
            return [], ([], [])
        finally:
            await keepalive.stop()
        return rows, ([row["stream_id"] for row in rows], [row["seq"] for row in rows])

    def _after_failures(self) -> None:
        self.stats.unacked = len(self._unacked)
        if self._unacked:
            self._retry_at = time.monotonic() + max(_RETRY_INTERVAL, self._retry_in)
        self._retry_in = 0.0
