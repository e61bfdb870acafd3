"""The quiz rules: hidden answer, server-measured time, rank from log order, one answer each."""

from __future__ import annotations

from datetime import timedelta

import pytest

from roomcast.domain import quiz, room
from roomcast.domain.commands import CloseQuestion, PublishQuestion, SubmitAnswer
from roomcast.domain.errors import (
    AlreadyAnswered,
    AppPermissionDenied,
    InvalidPayload,
    NotParticipant,
    PermissionDenied,
    QuestionClosed,
    QuestionNotFound,
    RoomClosed,
)
from roomcast.domain.events import AnswerResult, QuestionPublished
from roomcast.domain.events import QuestionClosed as Closed
from roomcast.domain.state import AppGrant, Room, UserRef
from tests.unit.builders import (
    ALICE,
    AT,
    BOB,
    CAROL,
    DAVE,
    MIA,
    ZED,
    active_room,
    closed_room,
    then,
)

SALT = bytes(range(16))
QID = "question_1"
LOTTERY = AppGrant(app_id="lottery", permissions=("realtime:publish",))
APP_ACTOR = UserRef(id="app:lottery", name="lottery")


def ask(actor: UserRef = ALICE, **overrides: object) -> PublishQuestion:
    fields: dict[str, object] = {
        "actor": actor,
        "at": AT,
        "question_id": QID,
        "question": "What is the capital of France?",
        "options": ["London", "Berlin", "Paris", "Madrid"],
        "time_limit": 10.0,
        "answer": "Paris",
        "salt": SALT,
        "total_questions": 3,
    }
    fields.update(overrides)
    return PublishQuestion(**fields)  # type: ignore[arg-type]


def answer(
    who: UserRef, text: str, after: float = 1.0, qid: str = QID, correct: str = "Paris"
) -> SubmitAnswer:
    return SubmitAnswer(
        actor=who,
        at=AT + timedelta(seconds=after),
        question_id=qid,
        answer=text,
        correct_answer=correct,
        salt=SALT,
    )


def asked() -> Room:
    state = active_room()
    return then(state, *room.decide(ask(), state))


def run(state: Room, *commands: SubmitAnswer) -> tuple[Room, list[AnswerResult]]:
    results: list[AnswerResult] = []
    for command in commands:
        events = room.decide(command, state)
        results += [e for e in events if isinstance(e, AnswerResult)]
        state = then(state, *events)
    return state, results


class TestPublish:
    def test_the_event_carries_a_commitment_never_the_answer(self):
        [event] = room.decide(ask(), active_room())
        assert isinstance(event, QuestionPublished)
        assert event.answer_commitment == quiz.commitment(SALT, "Paris")
        assert "Paris" not in event.answer_commitment
        assert event.question_number == 1
        assert event.start_time == AT
        assert event.options == ["London", "Berlin", "Paris", "Madrid"]

    def test_a_moderator_or_an_app_with_publish_may_ask(self):
        assert room.decide(ask(MIA), active_room())
        assert room.decide(ask(APP_ACTOR, app=LOTTERY), active_room())

    def test_participants_and_apps_without_the_permission_may_not(self):
        with pytest.raises(PermissionDenied):
            room.decide(ask(BOB), active_room())
        grant = AppGrant(app_id="lottery", permissions=())
        with pytest.raises(AppPermissionDenied):
            room.decide(ask(APP_ACTOR, app=grant), active_room())

    @pytest.mark.parametrize(
        ("field", "overrides"),
        [
            ("answer", {"answer": "Rome"}),
            ("options", {"options": ["Paris"]}),
            ("options", {"options": ["Paris", " paris "]}),
            ("timeLimit", {"time_limit": 0.5}),
            ("question", {"question": "  "}),
            ("salt", {"salt": b"short"}),
        ],
    )
    def test_malformed_questions_are_refused(self, field: str, overrides: dict[str, object]):
        with pytest.raises(InvalidPayload) as refused:
            room.decide(ask(**overrides), active_room())
        assert refused.value.details["field"] == field

    def test_open_question_without_options(self):
        [event] = room.decide(ask(options=[], answer="Paris"), active_room())
        assert isinstance(event, QuestionPublished)
        assert event.options == []

    def test_not_in_a_closed_room(self):
        with pytest.raises(RoomClosed):
            room.decide(ask(), closed_room())


class TestAnswer:
    def test_ranks_follow_the_order_of_correct_answers(self):
        _, results = run(
            asked(),
            answer(BOB, "Berlin", 1.0),
            answer(CAROL, "paris", 2.5),
            answer(DAVE, "PARIS ", 3.25),
        )
        assert [(r.user.id, r.correct, r.rank) for r in results] == [
            (BOB.id, False, None),
            (CAROL.id, True, 1),
            (DAVE.id, True, 2),
        ]
        assert [r.response_time for r in results] == [1.0, 2.5, 3.25]

    def test_answer_hash_lets_anyone_check_correct_after_the_reveal(self):
        _, results = run(asked(), answer(BOB, "Berlin"), answer(CAROL, "Paris"))
        commitment = quiz.commitment(SALT, "Paris")
        assert [r.answer_hash == commitment for r in results] == [r.correct for r in results]

    def test_one_answer_per_participant(self):
        state, _ = run(asked(), answer(BOB, "Berlin"))
        with pytest.raises(AlreadyAnswered):
            room.decide(answer(BOB, "Paris", 2.0), state)

    def test_late_answers_are_refused(self):
        state = asked()
        assert room.decide(answer(BOB, "Paris", 10.0), state)  # at the deadline: in time
        with pytest.raises(QuestionClosed) as refused:
            room.decide(answer(BOB, "Paris", 10.001), state)
        assert refused.value.details["questionId"] == QID

    def test_only_participants_answer(self):
        for who in (ZED, ALICE):
            with pytest.raises(NotParticipant):
                room.decide(answer(who, "Paris"), asked())

    def test_unknown_question(self):
        with pytest.raises(QuestionNotFound):
            room.decide(answer(BOB, "Paris", qid="question_x"), asked())

    def test_an_answer_outside_the_options_is_invalid_and_not_counted(self):
        state = asked()
        with pytest.raises(InvalidPayload):
            room.decide(answer(BOB, "Rome"), state)
        assert room.decide(answer(BOB, "Paris"), state)

    def test_a_wrong_secret_is_a_server_fault_not_a_wrong_answer(self):
        bad = SubmitAnswer(
            actor=BOB, at=AT, question_id=QID, answer="Paris", correct_answer="Rome", salt=SALT
        )
        with pytest.raises(quiz.AnswerSecretMismatch):
            room.decide(bad, asked())


class TestClose:
    def close(self, actor: UserRef = ALICE, after: float = 1.0, **kw: object) -> CloseQuestion:
        return CloseQuestion(
            actor=actor,
            at=AT + timedelta(seconds=after),
            question_id=QID,
            correct_answer="Paris",
            salt=SALT,
            **kw,  # type: ignore[arg-type]
        )

    def test_reveals_answer_and_salt_and_ranks(self):
        state, _ = run(asked(), answer(CAROL, "Paris", 2.0), answer(BOB, "Paris", 3.0))
        [event] = room.decide(self.close(after=5.0), state)
        assert isinstance(event, Closed)
        assert (event.correct_answer, bytes.fromhex(event.answer_salt)) == ("Paris", SALT)
        assert [(r.rank, r.user.id) for r in event.ranking] == [(1, CAROL.id), (2, BOB.id)]
        assert (event.answers, event.correct_count) == (2, 2)
        closed = then(state, event)
        with pytest.raises(QuestionClosed):
            room.decide(answer(DAVE, "Paris", 6.0), closed)
        with pytest.raises(QuestionClosed):
            room.decide(self.close(after=6.0), closed)

    def test_before_the_deadline_only_managers_and_apps(self):
        with pytest.raises(PermissionDenied):
            room.decide(self.close(BOB), asked())
        assert room.decide(self.close(APP_ACTOR, app=LOTTERY), asked())

    def test_after_the_deadline_anyone_may_close(self):
        assert room.decide(self.close(ZED, after=11.0), asked())


def test_leaderboard_orders_by_correct_then_time():
    state, _ = run(asked(), answer(BOB, "Paris", 4.0), answer(CAROL, "Paris", 2.0))
    state = then(state, *room.decide(ask(question_id="question_2", answer="Berlin"), state))
    state, _ = run(
        state,
        answer(BOB, "Berlin", 1.0, qid="question_2", correct="Berlin"),
        answer(CAROL, "Madrid", 1.0, qid="question_2", correct="Berlin"),
        answer(DAVE, "Berlin", 9.0, qid="question_2", correct="Berlin"),
    )
    board = quiz.leaderboard(state)
    assert [(e.rank, e.user.id, e.correct, e.answered) for e in board] == [
        (1, BOB.id, 2, 2),
        (2, CAROL.id, 1, 2),
        (3, DAVE.id, 1, 1),
    ]
    assert board[0].total_response_time == 5.0
