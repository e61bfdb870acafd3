"""Quiz use cases: publish a question, judge an answer, close (by hand or at the deadline).

The answer and its salt live in ``quiz_secrets`` (``QuizSecrets``); these use
cases fetch them and put them on the command, and the pure decider
(``roomcast.domain.quiz``) does the judging, so every result is in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
import structlog

from roomcast.domain import room
from roomcast.domain.commands import CloseQuestion, PublishQuestion, SubmitAnswer
from roomcast.domain.errors import NotFound, QuestionClosed, QuestionNotFound
from roomcast.domain.events import AnswerResult
from roomcast.domain.state import AppGrant, UserRef
from roomcast.service.quiz_secrets import QuizSecrets, Secret
from roomcast.service.rooms import Idempotency, Outcome, RoomService
from roomcast.service.sources import Sources

__all__ = ["Judged", "QuestionDraft", "QuizService", "deadline_sweeper"]

log = structlog.get_logger("roomcast.quiz")

_SALT_BYTES = 16
# The sweeper wakes at the next deadline, and at least this often to notice new
# questions published on other nodes.
_SWEEP_MAX_SLEEP = 1.0


@dataclass(frozen=True, slots=True)
class QuestionDraft:
    question: str
    options: list[str]
    answer: str
    time_limit: float
    total_questions: int | None = None


@dataclass(frozen=True, slots=True)
class Judged:
    """What ``quiz:answer_submit`` acks: the decided result and the event's seq."""

    result: AnswerResult
    seq: int


class QuizService:
    def __init__(
        self,
        rooms: RoomService,
        secrets_: QuizSecrets,
        sources: Sources,
        *,
        new_salt: Callable[[], bytes] = lambda: secrets.token_bytes(_SALT_BYTES),
    ) -> None:
        self._rooms = rooms
        self._secrets = secrets_
        self._sources = sources
        self._new_salt = new_salt

    async def publish(
        self,
        room_id: str,
        draft: QuestionDraft,
        *,
        actor: UserRef,
        app: AppGrant | None,
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        at = self._sources.now()
        question_id = self._sources.new_id("question")
        salt = self._new_salt()
        command = PublishQuestion(
            actor=actor,
            at=at,
            question_id=question_id,
            question=draft.question,
            options=draft.options,
            time_limit=draft.time_limit,
            answer=draft.answer,
            salt=salt,
            total_questions=draft.total_questions,
            app=app,
        )
        # The secret is written before the append, so a published question always
        # has one. Deciding first against the current state (pure, no write)
        # keeps refused requests from leaving secrets behind; if the append is
        # refused after all (the room moved meanwhile), the sweeper discards it.
        loaded = await self._rooms.current(room_id)
        room.decide(command, loaded.state)
        closes_at = at + timedelta(seconds=draft.time_limit)
        await self._secrets.put(Secret(question_id, room_id, draft.answer, salt), closes_at)
        return await self._rooms.execute(room_id, command, idempotency=idempotency)

    async def submit(
        self, user: UserRef, question_id: str, answer: str, *, room_id: str | None = None
    ) -> Judged:
        """Judge ``answer`` at the moment it arrived (server clock)."""
        at = self._sources.now()
        secret = await self._secret(question_id, room_id)
        command = SubmitAnswer(
            actor=user,
            at=at,
            question_id=question_id,
            answer=answer,
            correct_answer=secret.answer,
            salt=secret.salt,
        )
        outcome = await self._rooms.execute(secret.room_id, command)
        [envelope] = outcome.result.events
        result = _answer_decoder.decode(envelope.payload)
        return Judged(result=result, seq=outcome.result.version)

    async def close(
        self,
        room_id: str,
        question_id: str,
        *,
        actor: UserRef,
        app: AppGrant | None,
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        secret = await self._secret(question_id, room_id)
        command = CloseQuestion(
            actor=actor,
            at=self._sources.now(),
            question_id=question_id,
            correct_answer=secret.answer,
            salt=secret.salt,
            app=app,
        )
        outcome = await self._rooms.execute(room_id, command, idempotency=idempotency)
        await self._secrets.mark_closed(question_id)
        return outcome

    async def close_due(self) -> int:
        """Close every question past its deadline; returns how many were looked at."""
        due = await self._secrets.due(self._sources.now())
        for secret in due:
            command = CloseQuestion(
                actor=SWEEPER,
                at=self._sources.now(),
                question_id=secret.question_id,
                correct_answer=secret.answer,
                salt=secret.salt,
            )
            # Closed by hand or by another node meanwhile, or never published:
            # either way nothing is left to do for this question.
            with contextlib.suppress(QuestionClosed, NotFound):
                await self._rooms.execute(secret.room_id, command)
            await self._secrets.mark_closed(secret.question_id)
            log.info("quiz_question_closed", room_id=secret.room_id, question=secret.question_id)
        return len(due)

    async def next_deadline(self) -> datetime | None:
        return await self._secrets.next_deadline()

    async def _secret(self, question_id: str, room_id: str | None) -> Secret:
        secret = await self._secrets.get(question_id)
        if secret is None or (room_id is not None and secret.room_id != room_id):
            raise QuestionNotFound("no such question", {"questionId": question_id})
        return secret


SWEEPER = UserRef(id="roomcast:quiz-deadline", name="roomcast")
"""The actor of the deadline sweeper's closes (allowed once the time limit passed)."""


_answer_decoder = msgspec.json.Decoder(AnswerResult)


@contextlib.asynccontextmanager
async def deadline_sweeper(
    service: QuizService, now: Callable[[], datetime]
) -> AsyncIterator[None]:
    """Close questions at their deadline, on every node (the log's compare-and-set
    makes the first close win; the others are refused and ignored)."""

    async def sweep() -> None:
        while True:
            try:
                await service.close_due()
                upcoming = await service.next_deadline()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down, say: try again later
                log.warning("quiz_sweep_failed", error=repr(exc))
                upcoming = None
            delay = _SWEEP_MAX_SLEEP
            if upcoming is not None:
                delay = min(delay, max((upcoming - now()).total_seconds(), 0.0) + 0.001)
            await asyncio.sleep(delay)

    task = asyncio.create_task(sweep(), name="quiz-deadlines")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
