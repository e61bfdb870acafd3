"""The quiz ("Who's First?"): questions, answers judged by the server, a fair rank.

Rules, all decided from the room's state and the command (pure):

* The correct answer never enters the log before the question closes. The
  question's event carries ``sha256(salt || normalized answer)``; the server
  keeps answer and salt (``quiz_secrets``) and brings them on each command that
  needs them, and ``decide`` checks them against that commitment.
* ``responseTime`` is the server's receipt time (the command's ``at``) minus the
  question's ``startTime``: no client clock is involved.
* ``rank`` is the order of correct answers in the room's log. Appends to a room
  are serialised, so the log's order is the order the answers were accepted,
  and a replay of the log gives the same ranks.
* One answer per user per question; an answer after ``startTime + timeLimit``
  (or after closing) is refused with QUESTION_CLOSED. Anyone may close an
  expired question (the server's deadline sweeper does); before the deadline
  only the organizer, a moderator or an app with ``realtime:publish``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import msgspec
from msgspec import structs

from roomcast.domain.commands import CloseQuestion, PublishQuestion, SubmitAnswer
from roomcast.domain.errors import (
    AlreadyAnswered,
    InvalidPayload,
    NotParticipant,
    QuestionClosed,
    QuestionNotFound,
)
from roomcast.domain.events import (
    AnswerResult,
    Event,
    QuestionPublished,
    RankedAnswer,
)
from roomcast.domain.events import (
    QuestionClosed as QuestionClosedEvent,
)
from roomcast.domain.rules import require_manager_or_app, require_new_id, require_open
from roomcast.domain.state import Question, QuizAnswer, Room, UserRef

__all__ = [
    "MAX_OPTIONS",
    "MAX_TEXT",
    "AnswerSecretMismatch",
    "LeaderboardEntry",
    "close",
    "commitment",
    "deadline",
    "evolve",
    "leaderboard",
    "normalize",
    "publish",
    "submit",
]

MAX_TEXT = 1000
MAX_OPTIONS = 10
MIN_SALT_BYTES = 16
MAX_TIME_LIMIT = 3600.0


class AnswerSecretMismatch(Exception):
    """The answer and salt the server brought do not open the question's commitment.

    A broken server invariant (the secret store lost or changed a row), not a
    refusal of the caller: like ``draw.SeedMismatch``.
    """


def normalize(answer: str) -> str:
    """Case and spacing do not make an answer wrong: ``"  paris "`` is ``"Paris"``."""
    return " ".join(answer.split()).casefold()


def commitment(salt: bytes, answer: str) -> str:
    """``sha256(salt || utf8(normalize(answer)))`` in hex."""
    return hashlib.sha256(salt + normalize(answer).encode()).hexdigest()


def deadline(question: Question) -> datetime:
    return question.start_time + timedelta(seconds=question.time_limit)


# ---------------------------------------------------------------- decide


def publish(command: PublishQuestion, room: Room) -> list[Event]:
    require_manager_or_app(room, command.actor.id, command.app, "realtime:publish", "quiz:publish")
    require_open(room)
    _require_text(command.question, "question")
    options = command.options
    if options and not 2 <= len(options) <= MAX_OPTIONS:
        raise InvalidPayload(
            f"a question has no options or 2 to {MAX_OPTIONS}", {"field": "options"}
        )
    for option in options:
        _require_text(option, "options")
    if len({normalize(o) for o in options}) != len(options):
        raise InvalidPayload("options must differ from each other", {"field": "options"})
    if not 1 <= command.time_limit <= MAX_TIME_LIMIT:
        raise InvalidPayload(
            f"timeLimit is 1 to {MAX_TIME_LIMIT:g} seconds", {"field": "timeLimit"}
        )
    if command.total_questions is not None and command.total_questions < 1:
        raise InvalidPayload("totalQuestions must be at least 1", {"field": "totalQuestions"})
    _require_text(command.answer, "answer")
    if options and normalize(command.answer) not in {normalize(o) for o in options}:
        raise InvalidPayload("the answer must be one of the options", {"field": "answer"})
    if len(command.salt) < MIN_SALT_BYTES:
        raise InvalidPayload(f"the salt needs {MIN_SALT_BYTES} bytes or more", {"field": "salt"})
    require_new_id(room.questions, command.question_id)
    return [
        QuestionPublished(
            room_id=room.info.id,
            timestamp=command.at,
            question_id=command.question_id,
            question_number=len(room.questions) + 1,
            total_questions=command.total_questions,
            question=command.question,
            options=list(options),
            time_limit=command.time_limit,
            start_time=command.at,
            answer_commitment=commitment(command.salt, command.answer),
        )
    ]


def submit(command: SubmitAnswer, room: Room) -> list[Event]:
    question = _question(room, command.question_id)
    participant = room.member(command.actor.id)
    if participant is None:
        raise NotParticipant(
            "only participants of the room may answer",
            {"roomId": room.info.id, "questionId": question.id},
        )
    if question.closed or command.at > deadline(question):
        raise QuestionClosed(
            "this question no longer takes answers",
            {"questionId": question.id, "deadline": deadline(question).isoformat()},
        )
    if command.actor.id in question.answers:
        raise AlreadyAnswered(
            "one answer per participant per question", {"questionId": question.id}
        )
    _require_text(command.answer, "answer")
    if question.options and normalize(command.answer) not in {
        normalize(o) for o in question.options
    }:
        raise InvalidPayload("the answer must be one of the options", {"field": "answer"})
    _require_secret(question, command.correct_answer, command.salt)
    answer_hash = commitment(command.salt, command.answer)
    correct = answer_hash == question.answer_commitment
    return [
        AnswerResult(
            room_id=room.info.id,
            timestamp=command.at,
            question_id=question.id,
            participant_id=participant.id,
            user=participant.user,
            correct=correct,
            response_time=_seconds(command.at - question.start_time),
            rank=question.correct_count + 1 if correct else None,
            answer_hash=answer_hash,
        )
    ]


def close(command: CloseQuestion, room: Room) -> list[Event]:
    question = _question(room, command.question_id)
    if question.closed:
        raise QuestionClosed("the question is closed already", {"questionId": question.id})
    if command.at <= deadline(question):
        require_manager_or_app(
            room, command.actor.id, command.app, "realtime:publish", "quiz:close"
        )
    _require_secret(question, command.correct_answer, command.salt)
    ranking = sorted(
        (a for a in question.answers.values() if a.rank is not None), key=lambda a: a.rank or 0
    )
    return [
        QuestionClosedEvent(
            room_id=room.info.id,
            timestamp=command.at,
            question_id=question.id,
            correct_answer=command.correct_answer,
            answer_salt=command.salt.hex(),
            answers=len(question.answers),
            correct_count=question.correct_count,
            ranking=[
                RankedAnswer(
                    rank=a.rank or 0,
                    participant_id=a.participant_id,
                    user=a.user,
                    response_time=a.response_time,
                )
                for a in ranking
            ],
        )
    ]


def _question(room: Room, question_id: str) -> Question:
    question = room.questions.get(question_id)
    if question is None:
        raise QuestionNotFound("no such question in this room", {"questionId": question_id})
    return question


def _require_text(value: str, field: str) -> None:
    if not value.strip() or len(value) > MAX_TEXT:
        raise InvalidPayload(f"{field} must be 1 to {MAX_TEXT} characters", {"field": field})


def _require_secret(question: Question, answer: str, salt: bytes) -> None:
    if commitment(salt, answer) != question.answer_commitment:
        raise AnswerSecretMismatch(f"the stored answer does not open question {question.id}")


def _seconds(delta: timedelta) -> float:
    return round(max(delta.total_seconds(), 0.0), 3)


# ---------------------------------------------------------------- evolve


def evolve(room: Room, event: QuestionPublished | AnswerResult | QuestionClosedEvent) -> Room:
    match event:
        case QuestionPublished():
            question = Question(
                id=event.question_id,
                number=event.question_number,
                total=event.total_questions,
                text=event.question,
                options=event.options,
                time_limit=event.time_limit,
                start_time=event.start_time,
                answer_commitment=event.answer_commitment,
            )
        case AnswerResult():
            current = room.questions[event.question_id]
            answers = dict(current.answers)
            answers[event.user.id] = QuizAnswer(
                participant_id=event.participant_id,
                user=event.user,
                correct=event.correct,
                response_time=event.response_time,
                rank=event.rank,
            )
            question = structs.replace(
                current,
                answers=answers,
                correct_count=current.correct_count + (1 if event.correct else 0),
            )
        case QuestionClosedEvent():
            question = structs.replace(room.questions[event.question_id], closed=True)
    questions = dict(room.questions)
    questions[question.id] = question
    return structs.replace(room, questions=questions)


# ---------------------------------------------------------------- read model


class LeaderboardEntry(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    rank: int
    user: UserRef
    participant_id: str
    correct: int
    answered: int
    total_response_time: float
    """Sum of the response times of the correct answers, in seconds."""


def leaderboard(room: Room) -> list[LeaderboardEntry]:
    """Everyone who answered, by correct answers (more first), then total response
    time of those answers (less first), then user id, so the order is total."""
    tally: dict[str, tuple[QuizAnswer, int, int, float]] = {}
    for question in room.questions.values():
        for user_id, answer in question.answers.items():
            _, correct, answered, total = tally.get(user_id, (answer, 0, 0, 0.0))
            if answer.correct:
                correct += 1
                total += answer.response_time
            tally[user_id] = (answer, correct, answered + 1, total)
    ordered = sorted(tally.items(), key=lambda kv: (-kv[1][1], kv[1][3], kv[0]))
    return [
        LeaderboardEntry(
            rank=position,
            user=last.user,
            participant_id=last.participant_id,
            correct=correct,
            answered=answered,
            total_response_time=round(total, 3),
        )
        for position, (_, (last, correct, answered, total)) in enumerate(ordered, start=1)
    ]
