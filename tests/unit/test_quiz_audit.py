"""The audit re-judges a quiz from the log alone: reveal, judgements, ranks, times."""

from __future__ import annotations

from datetime import timedelta

import pytest
from msgspec import structs

from roomcast.audit.quiz_replay import Quizzes
from roomcast.domain import room
from roomcast.domain.commands import CloseQuestion, SubmitAnswer
from roomcast.domain.events import AnswerResult, Event
from tests.unit.builders import ALICE, AT, BOB, CAROL, DAVE, active_room, then
from tests.unit.test_quiz_decider import QID, SALT, ask


def quiz_log() -> list[Event]:
    """A real question's events: published, three answers (one wrong), closed."""
    state = active_room()
    log: list[Event] = []

    def run(command: object) -> None:
        nonlocal state
        events = room.decide(command, state)  # type: ignore[arg-type]
        log.extend(events)
        state = then(state, *events)

    run(ask())
    for who, text, after in ((BOB, "Berlin", 1.0), (CAROL, "Paris", 2.0), (DAVE, "paris", 3.5)):
        run(
            SubmitAnswer(
                actor=who,
                at=AT + timedelta(seconds=after),
                question_id=QID,
                answer=text,
                correct_answer="Paris",
                salt=SALT,
            )
        )
    run(
        CloseQuestion(
            actor=ALICE,
            at=AT + timedelta(seconds=5),
            question_id=QID,
            correct_answer="Paris",
            salt=SALT,
        )
    )
    return log


def check(log: list[Event]) -> tuple[str | None, Quizzes]:
    quizzes = Quizzes()
    for event in log:
        reason = quizzes.apply(event)
        if reason is not None:
            return reason, quizzes
    return None, quizzes


def test_an_honest_quiz_is_re_judged():
    reason, quizzes = check(quiz_log())
    assert reason is None
    assert (quizzes.questions, quizzes.verified, quizzes.pending) == (1, 1, 0)


def test_an_open_question_is_pending():
    reason, quizzes = check(quiz_log()[:-1])
    assert reason is None
    assert (quizzes.verified, quizzes.pending) == (0, 1)


def tamper(index: int, **changes: object) -> list[Event]:
    log = quiz_log()
    log[index] = structs.replace(log[index], **changes)
    return log


@pytest.mark.parametrize(
    ("log", "why"),
    [
        (lambda: tamper(1, correct=True, rank=1), "rank"),  # a wrong answer promoted
        (lambda: tamper(2, rank=2), "rank"),
        (lambda: tamper(3, response_time=0.5), "responseTime"),
        (lambda: tamper(4, correct_answer="Berlin"), "do not open"),
        (lambda: tamper(4, answer_salt="00" * 16), "do not open"),
        (lambda: tamper(4, correct_count=1), "counts"),
        (lambda: tamper(4, ranking=[]), "ranking"),
        (lambda: tamper(2, timestamp=AT + timedelta(seconds=11), response_time=11.0), "time limit"),
    ],
)
def test_a_doctored_log_is_caught(log, why: str):
    reason, _ = check(log())
    assert reason is not None
    assert why in reason


def test_a_judgement_that_contradicts_the_hash_is_caught():
    log = quiz_log()
    wrong = log[1]
    assert isinstance(wrong, AnswerResult)
    # Both flag and rank made consistent, so only the hash can tell.
    log[1] = structs.replace(wrong, correct=True, rank=1)
    log[2] = structs.replace(log[2], rank=2)
    log[3] = structs.replace(log[3], rank=3)
    reason, _ = check(log)
    assert reason == f"the answer of {BOB.id} is judged True, wrongly"
