"""Reactions: what the server does because an event was published, apart from publishing.

Today: the winner of a draw gets a ``winner_selected`` notification in their
inbox. The relay never runs a reaction: it moves each reacting event
(``Reactions.EVENTS``) from the outbox to the reaction queue in the statement
that deletes its outbox row (``sql.RELAY_DONE_REACTING``), so a reaction that
fails, however often, never holds up delivery. The ``Reactor`` runs the queue:
a reaction runs at least once per event (again after a crash) and its own
idempotency key (``once_for``) makes a repeat a no-op, so together exactly once.
A failure is tried again after a backoff (0.5 s doubling to 60 s); after
``attempts`` failures the row moves to ``dead_letters``, shown in ``/health``
and ``/metrics``, and retried or dropped with ``roomcast deadletter``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
import structlog

from roomcast.domain.state import Winner
from roomcast.outbox.reaction_queue import Job, ReactionQueue
from roomcast.service.notifications import NotificationService

__all__ = ["React", "Reactions", "Reactor", "ReactorStats"]

log = structlog.get_logger("roomcast.reactions")

_FIRST_DELAY = 0.5
_MAX_DELAY = 60.0


class _WinnerSelected(msgspec.Struct, rename="camel"):
    event_id: str
    room_id: str
    winner: Winner


_winner_decoder = msgspec.json.Decoder(_WinnerSelected)


class Reactions:
    EVENTS: frozenset[str] = frozenset({"winner:selected"})
    """The events something reacts to: only these enter the reaction queue."""

    def __init__(self, notifications: NotificationService) -> None:
        self._notifications = notifications

    async def __call__(self, stream_id: str, event: str, payload: msgspec.Raw) -> None:
        if event == "winner:selected":
            await self._winner_selected(_winner_decoder.decode(payload))

    async def _winner_selected(self, selected: _WinnerSelected) -> None:
        winner = selected.winner
        await self._notifications.notify(
            winner.participant.user.id,
            type="winner_selected",
            title="Congratulations!",
            message=f"You won {winner.prize.name}",
            data={"roomId": selected.room_id, "winnerId": winner.id, "prizeId": winner.prize_id},
            once_for=f"winner_selected:{selected.event_id}",
        )


React = Callable[[str, str, msgspec.Raw], Awaitable[None]]
"""``react(stream_id, event, payload)``: what ``Reactions`` is; raising means "try again"."""


@dataclass
class ReactorStats:
    done: int = 0
    failed: int = 0
    """Failed tries (each counts)."""
    dead: int = 0
    """Rows moved to the dead letters by this reactor."""


class Reactor:
    """Runs the reaction queue; ``run()`` until cancelled.

    ``active``: whether to work now (the node's relay holds partition 0 of the
    rooms, docs/decisions/0022-relay-partitions.md, so one reactor runs at a
    time; a brief overlap at a takeover is harmless, reactions being idempotent).
    """

    def __init__(
        self,
        queue: ReactionQueue,
        reactions: React,
        *,
        attempts: int = 5,
        poll_interval: float = 1.0,
        batch_size: int = 100,
        first_delay: float = _FIRST_DELAY,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self._queue = queue
        self._reactions = reactions
        self._attempts = attempts
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._first_delay = first_delay
        self.active = active
        """Whether to work now; ``bootstrap`` points it at the relay's ``runs_reactions``."""
        self._wake = asyncio.Event()
        self.stats = ReactorStats()

    def wake(self) -> None:
        """Reactions were queued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            ran = 0
            if self.active():
                try:
                    ran = await self.run_once()
                except Exception as exc:  # the database: try again at the next poll
                    log.warning("reactor_failed", error=repr(exc))
            if ran < self._batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def run_once(self) -> int:
        """Run the reactions due now; how many were tried."""
        jobs = await self._queue.due(self._batch_size)
        done: list[int] = []
        for job in jobs:
            try:
                await self._reactions(job.stream_id, job.event, job.payload)
            except Exception as exc:  # any failure of one reaction stays with its row
                await self._failed(job, exc)
                continue
            done.append(job.global_id)
        if done:
            await self._queue.done(done)
            self.stats.done += len(done)
        return len(jobs)

    async def _failed(self, job: Job, exc: Exception) -> None:
        attempts = job.attempts + 1
        error = repr(exc)[:1000]
        self.stats.failed += 1
        if attempts >= self._attempts:
            await self._queue.dead(job.global_id, attempts=attempts, error=error)
            self.stats.dead += 1
            log.error(
                "reaction_dead_lettered",
                global_id=job.global_id,
                stream_id=job.stream_id,
                event_type=job.event,
                attempts=attempts,
                error=error,
            )
            return
        delay = min(self._first_delay * 2 ** (attempts - 1), _MAX_DELAY)
        await self._queue.later(job.global_id, attempts=attempts, error=error, delay=delay)
        log.warning(
            "reaction_failed",
            global_id=job.global_id,
            event_type=job.event,
            attempts=attempts,
            retry_in=delay,
            error=error,
        )
