"""``roomcast audit verify``: the hash chain, the stream heads and every draw, in one pass.

All rooms are read in ONE read-only REPEATABLE READ transaction, so the heads
and the events are one consistent snapshot even while the service appends.
Rows come in pages by seq, the next one read while this one is checked
(``source.pages``); nothing is held but two pages and the current room's draw
state.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import asyncpg
import msgspec

from roomcast.audit import source
from roomcast.audit.chain import Chain
from roomcast.audit.quiz_replay import QUIZ_TYPES, Quizzes
from roomcast.audit.replay import DRAW_TYPES, Draws
from roomcast.outbox.codec import decode_event

__all__ = ["Progress", "RoomReport", "verify"]


@dataclass(frozen=True, slots=True)
class RoomReport:
    room_id: str
    events: int
    """Events whose chain links were checked (all of them when ``ok``)."""
    head_seq: int
    draws: int
    verified: int
    pending: int
    failed_seq: int | None = None
    """The first broken event; ``None`` with a ``reason`` when the head is what is broken."""
    failed_type: str | None = None
    reason: str | None = None
    questions: int = 0
    questions_verified: int = 0

    @property
    def ok(self) -> bool:
        return self.reason is None

    def line(self) -> str:
        if not self.ok:
            where = (
                "" if self.failed_seq is None else f"seq {self.failed_seq} ({self.failed_type}): "
            )
            return f"FAIL {self.room_id}: {where}{self.reason}"
        text = f"OK {self.room_id}: {self.events} events, hash chain intact up to the head"
        if self.verified:
            text += f"; {self.verified} draws verified"
        if self.pending:
            text += f"; {self.pending} draws not yet verifiable: seed not revealed"
        elif not self.draws:
            text += "; no draws"
        if self.questions:
            text += f"; {self.questions_verified}/{self.questions} quiz questions re-judged"
        return text

    def json(self) -> str:
        return msgspec.json.encode(
            {
                "room": self.room_id,
                "ok": self.ok,
                "events": self.events,
                "headSeq": self.head_seq,
                "draws": self.draws,
                "drawsVerified": self.verified,
                "drawsPending": self.pending,
                "questions": self.questions,
                "questionsVerified": self.questions_verified,
                "failedSeq": self.failed_seq,
                "reason": self.reason,
            }
        ).decode()


class Progress:
    """``verified N/M events`` on stderr, at most ten times a second; silent when disabled."""

    def __init__(self, total: int, *, enabled: bool, out: TextIO | None = None) -> None:
        self._total = total
        self._enabled = enabled
        self._out = sys.stderr if out is None else out
        self._tty = self._out.isatty()
        self._done = 0
        self._next = 0.0

    def advance(self, events: int) -> None:
        self._done += events
        if not self._enabled:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + (0.1 if self._tty else 1.0)
        percent = 100 * self._done // self._total if self._total else 100
        text = f"verified {self._done}/{self._total} events ({percent}%)"
        if self._tty:
            self._out.write(f"\r\x1b[K{text}")
        else:
            self._out.write(text + "\n")
        self._out.flush()

    def clear(self) -> None:
        if self._enabled and self._tty:
            self._out.write("\r\x1b[K")
            self._out.flush()


async def verify(
    conn: asyncpg.Connection,
    room_id: str | None,
    *,
    progress: bool,
    report: Callable[[RoomReport], None],
) -> list[RoomReport]:
    """Verify one room (``AuditError`` if it does not exist) or, with ``None``, every room."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        heads = [await source.head(conn, room_id)] if room_id else await source.heads(conn)
        meter = Progress(sum(h.version for h in heads), enabled=progress)
        reports = []
        try:
            for head in heads:
                result = await _room(conn, head, meter)
                meter.clear()
                report(result)
                reports.append(result)
        finally:
            meter.clear()
    return reports


async def _room(conn: asyncpg.Connection, head: source.Head, meter: Progress) -> RoomReport:
    room_id = head.stream_id
    chain = Chain(room_id)
    draws = Draws(await source.revealed_seed(conn, room_id))
    quizzes = Quizzes()

    def report(
        seq: int | None = None, type_: str | None = None, reason: str | None = None
    ) -> RoomReport:
        return RoomReport(
            room_id=room_id,
            # The chain runs a page ahead of the draws: a draw that fails was
            # the last event checked.
            events=chain.count if seq is None else min(chain.count, seq),
            head_seq=head.version,
            draws=draws.draws,
            verified=draws.verified,
            pending=draws.pending,
            failed_seq=seq,
            failed_type=type_,
            reason=reason,
            questions=quizzes.questions,
            questions_verified=quizzes.verified,
        )

    checked = DRAW_TYPES | QUIZ_TYPES
    async for page in source.pages(conn, room_id):
        broken = chain.extend(page)
        end = len(page) if broken is None else broken[0]
        # The draws and quizzes of the rows before the first broken link, in seq
        # order: a rule broken before that link is the first failure.
        for seq, _, type_, data, *_ in page[:end]:
            if type_ not in checked:
                continue
            try:
                event = decode_event(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                return report(seq, type_, f"the event does not decode: {exc}")
            checker = draws if type_ in DRAW_TYPES else quizzes
            reason = checker.apply(event)
            if reason is not None:
                return report(seq, type_, reason)
        if broken is not None:
            return report(page[end][0], page[end][2], broken[1])
        meter.advance(len(page))
    reason = chain.check_head(head.version, head.last_hash)
    if reason is not None:
        return report(None, None, reason)
    return report()
