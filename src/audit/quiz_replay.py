"""Quiz questions, re-judged from the log: pure, one event at a time, in seq order.

What the log lets anyone check once a question has closed (docs/audit.md):

* the revealed answer and salt open the question's ``answerCommitment``;
* every ``quiz:answer_result`` says ``correct`` exactly when its ``answerHash``
  equals the commitment (the submitted answer, salted, is the correct one);
* ranks are 1, 2, 3 … in log order over the correct answers, null otherwise,
  and ``quiz:question_closed`` ranks the same answers the same way;
* every answer came within the time limit, and its ``responseTime`` is its
  timestamp minus the question's ``startTime``.

A question still open can be checked for ranks and times only; the rest waits
for the reveal (``pending``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from roomcast.domain import quiz
from roomcast.domain.events import AnswerResult, Event, QuestionClosed, QuestionPublished

__all__ = ["QUIZ_TYPES", "Quizzes"]

QUIZ_TYPES = frozenset({"quiz:question_published", "quiz:answer_result", "quiz:question_closed"})
"""The event types a quiz check reads; the others need not be decoded for it."""


@dataclass(slots=True)
class _Open:
    published: QuestionPublished
    answers: list[AnswerResult] = field(default_factory=list)
    correct: int = 0


class Quizzes:
    def __init__(self) -> None:
        self._open: dict[str, _Open] = {}
        self._closed: set[str] = set()
        self.questions = 0
        self.verified = 0
        """Closed questions whose every judgement was recomputed and found right."""

    @property
    def pending(self) -> int:
        """Questions not closed yet: their answers cannot be re-judged before the reveal."""
        return len(self._open)

    def apply(self, event: Event) -> str | None:
        """``None`` if ``event`` keeps to the quiz rules, else why it does not."""
        match event:
            case QuestionPublished():
                qid = event.question_id
                if qid in self._open or qid in self._closed:
                    return f"question {qid} published twice"
                self._open[qid] = _Open(event)
                self.questions += 1
            case AnswerResult():
                return self._answer(event)
            case QuestionClosed():
                return self._close(event)
        return None

    def _answer(self, event: AnswerResult) -> str | None:
        question = self._open.get(event.question_id)
        if question is None:
            return f"an answer to question {event.question_id}, which is not open"
        published = question.published
        if event.timestamp > published.start_time + timedelta(seconds=published.time_limit):
            return "an answer recorded after the question's time limit"
        elapsed = round(max((event.timestamp - published.start_time).total_seconds(), 0.0), 3)
        if event.response_time != elapsed:
            return f"responseTime {event.response_time} is not timestamp - startTime ({elapsed})"
        if any(a.user.id == event.user.id for a in question.answers):
            return f"a second answer by {event.user.id}"
        expected_rank = question.correct + 1 if event.correct else None
        if event.rank != expected_rank:
            return f"rank {event.rank} where the log's order gives {expected_rank}"
        question.answers.append(event)
        question.correct += event.correct
        return None

    def _close(self, event: QuestionClosed) -> str | None:
        question = self._open.pop(event.question_id, None)
        if question is None:
            return f"question {event.question_id} closed but not open"
        self._closed.add(event.question_id)
        commitment = question.published.answer_commitment
        try:
            salt = bytes.fromhex(event.answer_salt)
        except ValueError:
            return "answerSalt is not hex"
        if quiz.commitment(salt, event.correct_answer) != commitment:
            return "the revealed answer and salt do not open the answerCommitment"
        for answer in question.answers:
            if (answer.answer_hash == commitment) != answer.correct:
                return f"the answer of {answer.user.id} is judged {answer.correct}, wrongly"
        ranked = [(a.rank, a.participant_id) for a in question.answers if a.correct]
        if [(r.rank, r.participant_id) for r in event.ranking] != ranked:
            return "the closing ranking differs from the ranks in the log"
        if (event.answers, event.correct_count) != (len(question.answers), question.correct):
            return "the closing counts differ from the answers in the log"
        self.verified += 1
        return None
