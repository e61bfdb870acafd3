"""/api/rooms/{roomId}/quiz: publish a question, close it, read the leaderboard.

Answers are not submitted here but over the socket (``quiz:answer_submit``),
where the server's receipt time is the start of the clock's measurement.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody
from msgspec import Meta

from roomcast.domain import quiz as rules
from roomcast.domain.quiz import LeaderboardEntry
from roomcast.http.commands import CommandContext, take
from roomcast.http.deps import AnyRequest, Caller, PathId, Quiz, Service
from roomcast.http.openapi import COMMAND, IDEMPOTENT, QUIZ, ROOM_READ, answers, command_answers
from roomcast.http.replies import QuestionClosedReply, QuestionReply
from roomcast.http.responses import SuccessResponse, ok
from roomcast.service.quiz import QuestionDraft

__all__ = ["QuestionBody", "QuizController"]

Text = Annotated[str, Meta(min_length=1, max_length=rules.MAX_TEXT)]


class QuestionBody(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    question: Text
    answer: Text
    """The correct answer: kept on the server until the question closes."""
    time_limit: Annotated[float, Meta(ge=1, le=rules.MAX_TIME_LIMIT)] = 10.0
    options: Annotated[list[Text], Meta(max_length=rules.MAX_OPTIONS)] = msgspec.field(
        default_factory=list
    )
    total_questions: Annotated[int, Meta(ge=1, le=10_000)] | None = None


class Leaderboard(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    room_id: str
    questions: int
    entries: list[LeaderboardEntry]
    version: int


class QuizController(Controller):
    path = "/api/rooms/{room_id:str}/quiz"
    tags = ["quiz"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post(
        "/questions",
        status_code=201,
        summary="Publish a question (organizer, moderator, or an app with realtime:publish)",
        opt=command_answers(QuestionReply, errors=COMMAND | QUIZ, request_headers=IDEMPOTENT),
    )
    async def publish(
        self, room_id: PathId, data: JSONBody[QuestionBody], request: AnyRequest, quiz: Quiz
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        outcome = await quiz.publish(
            room_id,
            QuestionDraft(
                question=data.question,
                options=list(data.options),
                answer=data.answer,
                time_limit=data.time_limit,
                total_questions=data.total_questions,
            ),
            actor=ctx.caller,
            app=ctx.app,
            idempotency=await ctx.idempotency(),
        )
        render = take("quiz:question_published", None, "question")
        return ctx.respond(outcome, render, status_code=201)

    @post(
        "/questions/{question_id:str}/close",
        status_code=200,
        summary="Close a question now and reveal its answer (otherwise at its time limit)",
        opt=command_answers(QuestionClosedReply, errors=COMMAND | QUIZ, request_headers=IDEMPOTENT),
    )
    async def close(
        self, room_id: PathId, question_id: PathId, request: AnyRequest, quiz: Quiz
    ) -> SuccessResponse:
        ctx = CommandContext.of(request)
        outcome = await quiz.close(
            room_id,
            question_id,
            actor=ctx.caller,
            app=ctx.app,
            idempotency=await ctx.idempotency(),
        )
        return ctx.respond(outcome, take("quiz:question_closed", None, "question"))

    @get(
        "/leaderboard",
        summary="Participants by correct answers, then total response time",
        opt=answers(ROOM_READ, data=Leaderboard, success_headers=("ETag",)),
    )
    async def leaderboard(
        self, room_id: PathId, service: Service, caller: Caller
    ) -> SuccessResponse:
        state, version = await service.readable(room_id, caller.id, "quiz:leaderboard")
        board = Leaderboard(
            room_id=room_id,
            questions=len(state.questions),
            entries=rules.leaderboard(state),
            version=version,
        )
        return ok(board, etag=version)
