"""The quiz end to end: REST publishes, sockets answer, the log ranks, the sweeper closes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import socketio

from roomcast.domain import quiz

from ..conftest import RunningServer
from .support import create_room, join, user_id

QUESTION = {
    "question": "What is the capital of France?",
    "options": ["London", "Berlin", "Paris", "Madrid"],
    "answer": "Paris",
    "timeLimit": 60,
    "totalQuestions": 3,
}


async def ask(
    http: httpx.AsyncClient, room_id: str, headers: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    response = await http.post(
        f"/api/rooms/{room_id}/quiz/questions", json={**QUESTION, **overrides}, headers=headers
    )
    assert response.status_code == 201, response.text
    question: dict[str, Any] = response.json()["data"]["question"]
    return question


async def socket(server: RunningServer, who: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, auth={"token": server.token(who)}, transports=["websocket"])
    return client


async def submit(client: socketio.AsyncClient, question_id: str, answer: str) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call(
        "quiz:answer_submit",
        {"questionId": question_id, "answer": answer, "timestamp": 0},
        timeout=60,
    )
    return ack


async def log_of(http: httpx.AsyncClient, server: RunningServer, room_id: str, org: str) -> list:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await http.get(
            f"/api/rooms/{room_id}/events",
            params={"after": after, "limit": 1000},
            headers=server.auth(org),
        )
        data = page.json()["data"]
        events += data["events"]
        if data["nextAfter"] >= data["headSeq"]:
            return events
        after = data["nextAfter"]


async def test_fifty_concurrent_answers_are_ranked_in_log_order_and_replay_the_same(
    server: RunningServer, http: httpx.AsyncClient
):
    org = user_id()
    room_id = await create_room(http, server, org)
    players = [user_id() for _ in range(50)]
    await asyncio.gather(*(join(http, server, room_id, p) for p in players))
    sockets = await asyncio.gather(*(socket(server, p) for p in players))
    try:
        question = await ask(http, room_id, server.auth(org))
        # Every third player is wrong; all answer at once.
        answers = ["Berlin" if i % 3 == 0 else "paris" for i in range(50)]
        acks = await asyncio.gather(
            *(submit(s, question["questionId"], a) for s, a in zip(sockets, answers, strict=True))
        )
    finally:
        await asyncio.gather(*(s.disconnect() for s in sockets))

    assert all(ack["success"] for ack in acks), acks
    correct = [ack for ack in acks if ack["correct"]]
    assert len(correct) == sum(1 for a in answers if a == "paris")
    assert sorted(ack["rank"] for ack in correct) == list(range(1, len(correct) + 1))
    assert all(ack["rank"] is None for ack in acks if not ack["correct"])
    assert all(ack["responseTime"] >= 0 for ack in acks)
    assert all(ack["data"]["rank"] == ack["rank"] for ack in acks)

    # The ranks are the order of the correct answers in the log, and reading the
    # log again (a replay) gives the same ranks to the same participants.
    results = [
        e["payload"]
        for e in await log_of(http, server, room_id, org)
        if e["event"] == "quiz:answer_result"
    ]
    assert len(results) == 50
    assert [r["seq"] for r in results] == sorted(r["seq"] for r in results)
    in_log_order = [r for r in results if r["correct"]]
    assert [r["rank"] for r in in_log_order] == list(range(1, len(in_log_order) + 1))
    by_seq = {ack["data"]["seq"]: ack for ack in acks}
    for result in results:
        ack = by_seq[result["seq"]]
        assert (ack["rank"], ack["correct"]) == (result["rank"], result["correct"])
        assert ack["data"]["participantId"] == result["participantId"]


async def test_the_answer_stays_hidden_until_close_then_ranks_and_board(
    server: RunningServer, http: httpx.AsyncClient, connected
):
    org, bob, carol = user_id(), user_id(), user_id()
    room_id = await create_room(http, server, org)
    await join(http, server, room_id, bob)
    await join(http, server, room_id, carol)
    watcher, recorder = await connected(org)
    await watcher.subscribe(room_id)

    question = await ask(http, room_id, server.auth(org))
    assert not {"answer", "correctAnswer", "answerSalt"} & set(question)
    assert question["answerCommitment"] == question["answerCommitment"].lower()
    assert question["startTime"] == question["timestamp"]

    bob_socket, carol_socket = await socket(server, bob), await socket(server, carol)
    try:
        first = await submit(carol_socket, question["questionId"], "Paris")
        second = await submit(bob_socket, question["questionId"], "Paris")
        assert (first["rank"], second["rank"]) == (1, 2)

        again = await submit(bob_socket, question["questionId"], "Berlin")
        assert again["success"] is False
        assert again["error"]["code"] == "ALREADY_ANSWERED"

        refused = await http.post(
            f"/api/rooms/{room_id}/quiz/questions/{question['questionId']}/close",
            headers=server.auth(bob),
        )
        assert refused.status_code == 403
        closed = await http.post(
            f"/api/rooms/{room_id}/quiz/questions/{question['questionId']}/close",
            headers=server.auth(org),
        )
        assert closed.status_code == 200, closed.text
        reveal = closed.json()["data"]["question"]
        assert reveal["correctAnswer"] == "Paris"
        salt = bytes.fromhex(reveal["answerSalt"])
        assert quiz.commitment(salt, "Paris") == question["answerCommitment"]
        assert [r["user"]["id"] for r in reveal["ranking"]] == [carol, bob]

        late = await submit(carol_socket, question["questionId"], "Paris")
        assert late["error"]["code"] == "QUESTION_CLOSED"
        unknown = await submit(carol_socket, "question_nope", "Paris")
        assert unknown["error"]["code"] == "QUESTION_NOT_FOUND"
        stranger = await socket(server, user_id())
        try:
            other = await ask(http, room_id, server.auth(org), question="Second?")
            outsider = await submit(stranger, other["questionId"], "Paris")
            assert outsider["error"]["code"] == "NOT_PARTICIPANT"
        finally:
            await stranger.disconnect()
    finally:
        await bob_socket.disconnect()
        await carol_socket.disconnect()

    await recorder.wait_for_seq(reveal["seq"])
    names = [name for name, _ in recorder.events]
    assert names[:4] == [
        "quiz:question_published",
        "quiz:answer_result",
        "quiz:answer_result",
        "quiz:question_closed",
    ]

    board = await http.get(f"/api/rooms/{room_id}/quiz/leaderboard", headers=server.auth(bob))
    entries = board.json()["data"]["entries"]
    assert [(e["rank"], e["user"]["id"], e["correct"]) for e in entries] == [
        (1, carol, 1),
        (2, bob, 1),
    ]
    outsider_board = await http.get(
        f"/api/rooms/{room_id}/quiz/leaderboard", headers=server.auth(user_id())
    )
    assert outsider_board.status_code == 403


async def test_a_question_closes_itself_at_its_time_limit(
    server: RunningServer, http: httpx.AsyncClient, connected
):
    org, player = user_id(), user_id()
    room_id = await create_room(http, server, org)
    await join(http, server, room_id, player)
    watcher, _ = await connected(org)
    await watcher.subscribe(room_id)
    question = await ask(http, room_id, server.app_auth("trivia"), timeLimit=1)
    closed = asyncio.get_running_loop().create_future()

    async def on_closed(event: str, payload: dict[str, Any]) -> None:
        if event == "quiz:question_closed" and not closed.done():
            closed.set_result(payload)

    watcher.on("*", on_closed)
    payload = await asyncio.wait_for(closed, 30)
    assert payload["questionId"] == question["questionId"]
    assert payload["correctAnswer"] == "Paris"
    assert payload["timestamp"] >= question["startTime"]

    # A participant answering now is too late, whatever their own clock says.
    late = await socket(server, player)
    try:
        refused = await submit(late, question["questionId"], "Paris")
    finally:
        await late.disconnect()
    assert refused["error"]["code"] == "QUESTION_CLOSED"


async def test_an_app_without_publish_cannot_ask(server: RunningServer, http: httpx.AsyncClient):
    org = user_id()
    room_id = await create_room(http, server, org)
    response = await http.post(
        f"/api/rooms/{room_id}/quiz/questions",
        json=QUESTION,
        headers=server.app_auth("trivia", ("quiz:read",)),
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "APP_PERMISSION_DENIED"
