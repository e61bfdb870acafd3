"""Revoked tokens: the ``revoked_tokens`` table, and the in-memory set every node checks.

Token verification is synchronous (REST dependencies, Socket.IO connect), so it
cannot ask PostgreSQL. Each node keeps the revoked jtis in memory instead:

* ``revoke`` commits the row, then sends ``NOTIFY roomcast_revoked, '<jti>'`` in
  its own statement: the revoking node knows at once, every other node as soon
  as its listener hears it (milliseconds).
* Each node's ``Revocations.run`` listens on a dedicated connection and reloads
  the whole set when it (re)connects and every ``refresh_every`` seconds, so a
  notification lost while its connection was down delays a revocation by at
  most that period, never forever.
* Subscribers (``subscribe``) hear of every jti newly revoked on this node's
  set, from any source: the gateway ends live sessions with it.

Rows live until the token would have expired anyway (``expires_at``);
``expire_revocations`` (run by housekeeping) deletes them after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime

import asyncpg
import structlog

from roomcast.outbox.errors import map_db_errors

__all__ = ["NOTIFY_REVOKED", "Revocations", "expire_revocations", "revoke_token"]

log = structlog.get_logger("roomcast.revocations")

NOTIFY_REVOKED = "roomcast_revoked"

# A token past its exp is refused by the verifier (10 s leeway): the row may go
# a little after that, never before.
_PURGE_AFTER_SECONDS = 60.0

_REVOKE = """
    INSERT INTO revoked_tokens (jti, expires_at, revoked_by) VALUES ($1, $2, $3)
    ON CONFLICT (jti) DO UPDATE
        SET expires_at = greatest(revoked_tokens.expires_at, excluded.expires_at)
"""

_LOAD = """
    SELECT jti, extract(epoch FROM expires_at)::float8 AS expires_at FROM revoked_tokens
    WHERE expires_at > now() - make_interval(secs => $1)
"""

_EXPIRE = """
    DELETE FROM revoked_tokens
    WHERE ctid IN (
        SELECT ctid FROM revoked_tokens
        WHERE expires_at < now() - make_interval(secs => $1)
        LIMIT $2
    )
"""

Subscriber = Callable[[str], None]


async def revoke_token(
    pool: asyncpg.Pool, jti: str, *, expires_at: datetime, revoked_by: str | None
) -> None:
    """Record the revocation, then tell every node (after the commit, its own statement)."""
    with map_db_errors():
        await pool.execute(_REVOKE, jti, expires_at, revoked_by)
    try:
        # Payload "<exp epoch> <jti>": the jti may hold spaces, the number cannot.
        payload = f"{expires_at.timestamp()} {jti}"
        await pool.execute("SELECT pg_notify($1, $2)", NOTIFY_REVOKED, payload)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Committed: the other nodes' periodic refresh will find it.
        log.warning("revocation_notify_failed", jti=jti, error=str(exc))


async def expire_revocations(pool: asyncpg.Pool, batch: int = 5000) -> int:
    """Delete rows of tokens that have expired anyway; returns how many."""
    removed = 0
    while True:
        with map_db_errors():
            status = await pool.execute(_EXPIRE, _PURGE_AFTER_SECONDS, batch)
        count = int(status.split()[-1])
        removed += count
        if count < batch:
            return removed


class Revocations:
    """This node's set of revoked jtis, kept in step with ``revoked_tokens``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        *,
        refresh_every: float = 30.0,
        retention_seconds: float = 30 * 86400,
    ) -> None:
        self.retention_seconds = retention_seconds
        """How long a revocation of a token whose ``exp`` is unknown is kept."""
        self._pool = pool
        self._dsn = dsn
        self._refresh_every = refresh_every
        self._revoked: dict[str, float] = {}
        """jti → its expiry (epoch seconds). Only expiry removes an entry: a refresh
        that raced a notification must not drop what the notification added."""
        self._subscribers: list[Subscriber] = []
        self.loaded = asyncio.Event()
        """Set once the set has been read from the table (start-up waits for it)."""

    def is_revoked(self, jti: str) -> bool:
        return jti in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(jti)`` for each jti newly revoked here; returns an unsubscribe."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    async def revoke(self, jti: str, *, expires_at: datetime, revoked_by: str | None) -> None:
        await revoke_token(self._pool, jti, expires_at=expires_at, revoked_by=revoked_by)
        self._add({jti: expires_at.timestamp()})  # no need to wait for our own notification

    async def refresh(self) -> None:
        """Reload the set from the table (expired rows drop out of memory here)."""
        with map_db_errors():
            rows = await self._pool.fetch(_LOAD, _PURGE_AFTER_SECONDS)
        horizon = time.time() - _PURGE_AFTER_SECONDS
        kept = {jti: exp for jti, exp in self._revoked.items() if exp > horizon}
        self._revoked = kept
        self._add({r["jti"]: r["expires_at"] for r in rows})
        self.loaded.set()

    async def run(self) -> None:
        """Listen for revocations and refresh periodically, until cancelled."""
        backoff = 0.1
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: keep trying, memory stays
                log.warning("revocations_listener_failed", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.1

    async def _listen(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "roomcast-revocations"}
        )
        try:
            await conn.add_listener(NOTIFY_REVOKED, self._on_notify)
            # After LISTEN: a revocation committed before it is in the table.
            await self.refresh()
            while not conn.is_closed():
                # The periodic refresh is the fallback for a notification lost
                # while a connection was down; the closed check reconnects.
                await asyncio.sleep(self._refresh_every)
                await self.refresh()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close(timeout=2))

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        expires, _, jti = payload.partition(" ")
        try:
            expires_at = float(expires)
        except ValueError:
            return  # not ours; the periodic refresh covers anything real
        if jti:
            self._add({jti: expires_at})

    def _add(self, revoked: dict[str, float]) -> None:
        new = [jti for jti in revoked if jti not in self._revoked]
        for jti, expires_at in revoked.items():
            self._revoked[jti] = max(expires_at, self._revoked.get(jti, expires_at))
        self._tell(new)

    def _tell(self, jtis: list[str]) -> None:
        for jti in jtis:
            log.info("token_revoked", jti=jti)
            for subscriber in list(self._subscribers):
                try:
                    subscriber(jti)
                except Exception as exc:  # one subscriber must not stop the others
                    log.error("revocation_subscriber_failed", jti=jti, exc_info=exc)
