"""Socket sessions: which token each connection was opened with, and when it ends.

A socket is authenticated once, at connection time, with a JWT that has an
``exp``. Nothing in Socket.IO re-checks it, so each session's end is set for
that instant: when it fires the socket receives ``token:expired`` and is
disconnected. The client gets a fresh token and reconnects; ``room:subscribe``
with ``lastSeq`` then replays whatever was committed in between.

One timer serves every session of the node: the expiries wait in a heap, and a
single ``TimerHandle`` is set for the earliest (a handle per socket was ≈0.5 KB
of each idle connection, bench P6). A closed session's entry stays in the heap
until its instant passes or the heap is compacted (when stale entries
outnumber live sessions).

``end_token`` ends every session opened with a given token id (``jti``) the
same way, with another ``reason``: revocation calls it.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import msgspec
import structlog

from roomcast.tokens import Claims

__all__ = ["EndReason", "Sessions", "TokenExpired"]

log = structlog.get_logger("roomcast.gateway")

EndReason = Literal["expired", "revoked"]


class TokenExpired(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The ``token:expired`` notice, sent to one socket just before it is disconnected."""

    expired_at: datetime
    """The token's ``exp`` (or, for a revoked token, when it was revoked)."""
    reason: EndReason = "expired"


class _Server(Protocol):
    async def emit(self, event: str, data: Any = None, *, to: str | None = None) -> None: ...

    async def disconnect(self, sid: str) -> None: ...


@dataclass(slots=True)
class _Session:
    sid: str
    user_id: str
    token_id: str | None
    expires_at: float
    due: bool = False
    """Its expiry waits in the heap (``_expire`` has not run yet)."""


class Sessions:
    """One session per connected socket of this node, each ending when its token expires."""

    def __init__(self, server: _Server, *, clock: Callable[[], float] = time.time) -> None:
        self._server = server
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._by_token: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._deadlines: list[tuple[float, str]] = []
        """(expires_at, sid) of every session with a timer, a heap; closed ones linger."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def open(self, sid: str, claims: Claims) -> None:
        """Start ``sid``'s session; it ends at ``claims.expires_at`` (Unix seconds).

        A token accepted inside the verifier's clock-skew leeway is already past
        its ``exp``: its session ends at once, right after the connection.
        """
        session = _Session(
            sid=sid,
            user_id=claims.user.id,
            token_id=claims.token_id,
            expires_at=claims.expires_at,
        )
        self._sessions[sid] = session
        if claims.token_id is not None:
            self._by_token.setdefault(claims.token_id, set()).add(sid)
        # Every verified token has an exp (the verifier requires a number).
        if claims.expires_at > 0:
            session.due = True
            heapq.heappush(self._deadlines, (claims.expires_at, sid))
            if len(self._deadlines) > 2 * len(self._sessions) + 64:
                self._compact()
            self._arm()

    def close(self, sid: str) -> None:
        """Forget ``sid`` (it disconnected); its expiry no longer fires."""
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        session.due = False  # its heap entry is skipped when its instant comes
        if not self._sessions and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._deadlines.clear()
        if session.token_id is not None:
            sids = self._by_token.get(session.token_id)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._by_token[session.token_id]

    async def end_token(self, token_id: str, *, reason: EndReason = "revoked") -> int:
        """End every session opened with token ``token_id``: notice, then disconnect.

        Returns how many sockets of this node were ended. For revocation: call it
        on every node (each holds only its own sockets).
        """
        sids = sorted(self._by_token.get(token_id, ()))
        at = datetime.fromtimestamp(self._clock(), UTC)
        for sid in sids:
            await self._end(sid, TokenExpired(expired_at=at, reason=reason))
        return len(sids)

    def revoked(self, token_id: str) -> None:
        """A ``Revocations`` subscriber (synchronous): end this node's sockets of the token.

        Every node's revocation set hears of a revocation (NOTIFY, or the periodic
        reload), so every node ends its own sockets of that token.
        """
        task = asyncio.get_running_loop().create_task(self._end_token(token_id))
        self._tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _end_token(self, token_id: str) -> None:
        await self.end_token(token_id)

    def token_of(self, sid: str) -> str | None:
        session = self._sessions.get(sid)
        return None if session is None else session.token_id

    def __len__(self) -> int:
        return len(self._sessions)

    def _arm(self) -> None:
        """The one timer, set for the earliest expiry in the heap."""
        if not self._deadlines:
            return
        at = self._deadlines[0][0]
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        delay = max(0.0, at - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._clock()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, sid = heapq.heappop(deadlines)
            self._expire(sid)
        self._arm()

    def _compact(self) -> None:
        """Drop the entries of closed sessions (a reconnect storm leaves many)."""
        self._deadlines = [(s.expires_at, s.sid) for s in self._sessions.values() if s.due]
        heapq.heapify(self._deadlines)

    def _expire(self, sid: str) -> None:
        session = self._sessions.get(sid)
        if session is None or not session.due:
            return
        session.due = False
        notice = TokenExpired(expired_at=datetime.fromtimestamp(session.expires_at, UTC))
        task = asyncio.get_running_loop().create_task(self._end(sid, notice))
        self._tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _end(self, sid: str, notice: TokenExpired) -> None:
        session = self._sessions.get(sid)
        if session is None:  # already gone
            return
        log.info("socket_session_ended", sid=sid, user_id=session.user_id, reason=notice.reason)
        try:
            await self._server.emit("token:expired", notice, to=sid)
            # The notice and the DISCONNECT packet share the socket's queue, in order:
            # the client reads why before it is disconnected.
            await self._server.disconnect(sid)
        except Exception:  # a timer has nobody to answer to: log, never lose it silently
            log.exception("socket_session_end_failed", sid=sid)
        self.close(sid)
