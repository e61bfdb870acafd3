"""App events over REST: published through the log, delivered live, refused with typed codes."""

from __future__ import annotations

import asyncio
import time

import httpx

from ..conftest import RunningServer
from .support import create_room, user_id


async def publish(
    http: httpx.AsyncClient,
    room_id: str,
    headers: dict[str, str],
    event: str = "lottery:draw_started",
    data: object = None,
) -> httpx.Response:
    body = {"event": event, "data": {"drawNumber": 1, "totalPrizes": 10} if data is None else data}
    return await http.post(f"/api/rooms/{room_id}/events", json=body, headers=headers)


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert body["success"] is False
    return str(body["error"]["code"])


async def test_an_app_event_reaches_subscribers_and_stays_in_the_log(
    server: RunningServer, http: httpx.AsyncClient, connected
):
    org = user_id()
    room_id = await create_room(http, server, org)
    client, recorder = await connected(org)
    await client.subscribe(room_id)
    response = await publish(http, room_id, server.app_auth("lottery"))
    assert response.status_code == 201, response.text
    published = response.json()["data"]["event"]
    assert published["type"] == "lottery:draw_started"
    assert published["appId"] == "lottery"
    # Seed 003: the app's object as sent, roomcast's own fields beside it.
    assert {k: published[k] for k in ("drawNumber", "totalPrizes")} == {
        "drawNumber": 1,
        "totalPrizes": 10,
    }
    assert set(published) == {
        "eventId", "seq", "type", "roomId", "appId", "timestamp", "drawNumber", "totalPrizes"
    }  # fmt: skip

    await recorder.wait_for_seq(published["seq"])
    [(name, payload)] = recorder.events
    assert name == "lottery:draw_started"
    assert payload == published

    # A replay sends the same object, flagged as replayed.
    late, late_recorder = await connected(org)
    await late.subscribe(room_id, last_seq=0)
    await late_recorder.wait_for_seq(published["seq"])
    replayed = dict(late_recorder.events)["lottery:draw_started"]
    assert replayed == {**published, "replayed": True}

    log = await http.get(f"/api/rooms/{room_id}/events?after=0", headers=server.auth(org))
    assert [e["event"] for e in log.json()["data"]["events"]] == [
        "room:created",
        "lottery:draw_started",
    ]


async def test_refusals_carry_the_protocols_codes(server: RunningServer, http: httpx.AsyncClient):
    org = user_id()
    room_id = await create_room(http, server, org)

    no_permission = await publish(http, room_id, server.app_auth("lottery", ("quiz:read",)))
    assert (no_permission.status_code, error_code(no_permission)) == (403, "APP_PERMISSION_DENIED")

    wrong_header = {**server.app_auth("lottery"), "X-App-Id": "casino"}
    mismatch = await publish(http, room_id, wrong_header)
    assert (mismatch.status_code, error_code(mismatch)) == (403, "APP_PERMISSION_DENIED")

    as_user = await publish(http, room_id, server.auth(org))
    assert (as_user.status_code, error_code(as_user)) == (403, "APP_PERMISSION_DENIED")

    wrong_prefix = await publish(http, room_id, server.app_auth("lottery"), event="casino:spin")
    assert (wrong_prefix.status_code, error_code(wrong_prefix)) == (400, "INVALID_PAYLOAD")

    forged = await publish(http, room_id, server.app_auth("room"), event="room:deleted")
    assert (forged.status_code, error_code(forged)) == (400, "INVALID_PAYLOAD")

    not_an_object = await publish(http, room_id, server.app_auth("lottery"), data=[1, 2])
    assert (not_an_object.status_code, error_code(not_an_object)) == (400, "INVALID_PAYLOAD")

    for reserved in ("seq", "eventId", "roomId", "type", "appId", "timestamp", "replayed"):
        clash = await publish(http, room_id, server.app_auth("lottery"), data={reserved: 1})
        assert (clash.status_code, error_code(clash)) == (400, "INVALID_PAYLOAD")
        assert clash.json()["error"]["details"]["field"] == f"data.{reserved}"

    unknown_room = await publish(http, "room_doesnotexist", server.app_auth("lottery"))
    assert (unknown_room.status_code, error_code(unknown_room)) == (404, "ROOM_NOT_FOUND")

    log = await http.get(f"/api/rooms/{room_id}/events?after=0", headers=server.auth(org))
    assert [e["event"] for e in log.json()["data"]["events"]] == ["room:created"]


async def test_more_than_ten_events_a_second_in_a_room_get_429_with_retry_after(
    server: RunningServer, http: httpx.AsyncClient
):
    org = user_id()
    room_id = await create_room(http, server, org)
    headers = server.app_auth("lottery")
    started = time.monotonic()
    responses = await asyncio.gather(*(publish(http, room_id, headers) for _ in range(30)))
    elapsed = time.monotonic() - started
    accepted = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 429]
    assert len(accepted) + len(refused) == 30
    # Every accepted event fell into some one-second window with at most 9 others.
    assert len(accepted) <= 10 * (int(elapsed) + 1)
    assert refused, f"30 requests in {elapsed:.2f}s and none refused"
    assert error_code(refused[0]) == "RATE_LIMIT_EXCEEDED"
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].json()["error"]["details"]["limit"] == 10

    # Another room is not affected by this one's limit.
    other = await create_room(http, server, org)
    assert (await publish(http, other, headers)).status_code == 201
