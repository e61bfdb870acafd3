"""Server-Sent Events end to end: httpx against uvicorn, compared with the log."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .sse_client import SseStream, open_stream
from .support import create_room, join, rename_many, user_id


async def log_of(http: httpx.AsyncClient, server: RunningServer, org: str, room_id: str):
    """The room's whole log as the organizer reads it: [(seq, event, payload)]."""
    out: list[tuple[int, str, dict[str, Any]]] = []
    after = 0
    while True:
        page = await http.get(
            f"/api/rooms/{room_id}/events",
            params={"after": after, "limit": 1000},
            headers=server.auth(org),
        )
        assert page.status_code == 200, page.text
        data = page.json()["data"]
        out.extend((e["payload"]["seq"], e["event"], e["payload"]) for e in data["events"])
        if data["nextAfter"] >= data["headSeq"]:
            return out
        after = data["nextAfter"]


def received(*streams: SseStream) -> list[tuple[int, str, dict[str, Any]]]:
    return [(int(e.id), e.event, e.data) for s in streams for e in s.events if e.id is not None]


async def test_a_stream_replays_then_follows_and_resumes_after_a_drop_with_no_hole_or_duplicate(
    server: RunningServer, http: httpx.AsyncClient
):
    org, bob = user_id(), user_id()
    room_id = await create_room(http, server, org)
    await join(http, server, room_id, bob)
    url = f"/api/rooms/{room_id}/stream"
    # From the start (?lastEventId=0), while commands run.
    async with open_stream(http, url, params={"lastEventId": 0}, headers=server.auth(bob)) as first:
        writer = asyncio.create_task(rename_many(http, server, org, room_id, 40, concurrency=4))
        await first.wait(lambda s: len(s.seqs) >= 12)
    # Dropped mid-flight; the writer goes on, then a second burst while nobody listens.
    await writer
    await rename_many(http, server, org, room_id, 10)
    head = len(await log_of(http, server, org, room_id))
    headers = {**server.auth(bob), "Last-Event-ID": first.last_id or "0"}
    async with open_stream(http, url, headers=headers) as second:
        await second.wait_for_seq(head)
        await rename_many(http, server, org, room_id, 5)
        await second.wait_for_seq(head + 5)
    log = await log_of(http, server, org, room_id)
    assert [seq for seq, _, _ in log] == list(range(1, head + 6))
    assert received(first, second) == log  # ids, names and payloads, once each, in order
    assert second.seqs[0] == first.seqs[-1] + 1


async def test_without_last_event_id_a_stream_starts_at_the_head(
    server: RunningServer, http: httpx.AsyncClient
):
    org = user_id()
    room_id = await create_room(http, server, org)
    await rename_many(http, server, org, room_id, 3)
    async with open_stream(http, f"/api/rooms/{room_id}/stream", headers=server.auth(org)) as s:
        await rename_many(http, server, org, room_id, 1, concurrency=1)
        await s.wait_for_seq(5)
    assert s.seqs == [5]
    assert s.events[0].event == "room:updated"


async def test_eventsource_style_token_and_last_event_id_in_the_query(
    server: RunningServer, http: httpx.AsyncClient
):
    org = user_id()
    room_id = await create_room(http, server, org)
    await rename_many(http, server, org, room_id, 2, concurrency=1)
    params = {"access_token": server.token(org), "lastEventId": 1}
    async with open_stream(http, f"/api/rooms/{room_id}/stream", params=params) as s:
        await s.wait_for_seq(3)
    assert s.seqs == [2, 3]
    # The header wins over the query (EventSource reconnects to the same URL with it).
    headers = {"Last-Event-ID": "2"}
    async with open_stream(
        http, f"/api/rooms/{room_id}/stream", params=params, headers=headers
    ) as s:
        await s.wait_for_seq(3)
    assert s.seqs == [3]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no token", 401, "AUTHENTICATION_FAILED"),
        ("bad token", 401, "AUTHENTICATION_FAILED"),
        ("stranger", 403, "PERMISSION_DENIED"),
        ("unknown room", 404, "ROOM_NOT_FOUND"),
        ("an inbox", 404, "ROOM_NOT_FOUND"),
        ("ahead of the head", 400, "INVALID_PAYLOAD"),
        ("not a seq", 400, "INVALID_PAYLOAD"),
        ("negative query", 400, "INVALID_PAYLOAD"),
    ],
)
async def test_a_stream_that_may_not_open_is_refused_with_the_envelope(
    server: RunningServer, http: httpx.AsyncClient, case: str, status: int, code: str
):
    org = user_id()
    room_id = await create_room(http, server, org)
    url = f"/api/rooms/{room_id}/stream"
    kwargs: dict[str, Any] = {"headers": server.auth(org)}
    if case == "no token":
        kwargs = {}
    elif case == "bad token":
        kwargs = {"params": {"access_token": "nope"}}
    elif case == "stranger":
        kwargs = {"headers": server.auth(user_id())}
    elif case == "unknown room":
        url = "/api/rooms/room_nope/stream"
    elif case == "an inbox":
        url = f"/api/rooms/user:{org}/stream"
    elif case == "ahead of the head":
        kwargs["headers"]["Last-Event-ID"] = "2"
    elif case == "not a seq":
        kwargs["headers"]["Last-Event-ID"] = "abc"
    elif case == "negative query":
        kwargs["params"] = {"lastEventId": -1}
    response = await http.get(url, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code


async def test_a_removed_participants_stream_ends_with_a_typed_error(
    server: RunningServer, http: httpx.AsyncClient
):
    org, bob = user_id(), user_id()
    room_id = await create_room(http, server, org)
    part_id = await join(http, server, room_id, bob)
    async with open_stream(
        http, f"/api/rooms/{room_id}/stream", params={"lastEventId": 0}, headers=server.auth(bob)
    ) as s:
        await s.wait_for_seq(2)
        removed = await http.delete(
            f"/api/rooms/{room_id}/participants/{part_id}", headers=server.auth(org)
        )
        assert removed.status_code == 200, removed.text
        await s.wait(lambda s: s.ended)
    assert [e.event for e in s.events] == [
        "room:created",
        "participant:joined",
        "participant:left",
        "error",
    ]
    error = s.events[-1].data
    assert error["code"] == "PERMISSION_DENIED"
    assert error["details"] == {"action": "room:subscribe", "roomId": room_id}
    # And it may not come back.
    again = await http.get(f"/api/rooms/{room_id}/stream", headers=server.auth(bob))
    assert again.status_code == 403


async def test_a_deleted_rooms_stream_ends_with_room_not_found(
    server: RunningServer, http: httpx.AsyncClient
):
    org = user_id()
    room_id = await create_room(http, server, org)
    async with open_stream(http, f"/api/rooms/{room_id}/stream", headers=server.auth(org)) as s:
        deleted = await http.delete(f"/api/rooms/{room_id}", headers=server.auth(org))
        assert deleted.status_code == 200, deleted.text
        await s.wait(lambda s: s.ended)
    assert [e.event for e in s.events] == ["room:deleted", "error"]
    assert s.events[-1].data["code"] == "ROOM_NOT_FOUND"


async def test_the_notification_stream_follows_the_callers_inbox_and_resumes(
    server: RunningServer, http: httpx.AsyncClient
):
    org, bob = user_id(), user_id()
    room_id = await create_room(http, server, org)
    await join(http, server, room_id, bob)
    prize = await http.post(
        f"/api/rooms/{room_id}/prizes",
        json={"name": "Mug", "quantity": 1},
        headers=server.auth(org),
    )
    assert prize.status_code == 201, prize.text
    active = await http.post(
        f"/api/rooms/{room_id}/status", json={"status": "active"}, headers=server.auth(org)
    )
    assert active.status_code == 200, active.text
    async with open_stream(http, "/api/notifications/stream", headers=server.auth(bob)) as s:
        drawn = await http.post(
            f"/api/rooms/{room_id}/draws",
            json={"prizeId": prize.json()["data"]["prize"]["id"]},
            headers=server.auth(org),
        )
        assert drawn.status_code == 201, drawn.text
        await s.wait_for_seq(1)
    assert s.events[0].event == "notification:received"
    notification_id = s.events[0].data["id"]
    marked = await http.post(f"/api/notifications/{notification_id}/read", headers=server.auth(bob))
    assert marked.status_code == 200, marked.text
    headers = {**server.auth(bob), "Last-Event-ID": "1"}
    async with open_stream(http, "/api/notifications/stream", headers=headers) as again:
        await again.wait_for_seq(2)
    assert [(e.id, e.event) for e in again.events] == [("2", "notification:read")]
    # Someone else's stream is their own inbox: it never reached seq 1.
    theirs = await http.get(
        "/api/notifications/stream", params={"lastEventId": 1}, headers=server.auth(org)
    )
    assert theirs.status_code == 400, theirs.text
    assert theirs.json()["error"]["details"] == {"lastEventId": 1, "headSeq": 0}


@pytest.fixture(scope="module")
def tight(
    own_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A node whose streams are cheap to push past their limits."""
    settings = Settings(
        database_url=own_database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("sse-node")),
        rest_rate_limit=0,
        sse_heartbeat_seconds=0.2,
        sse_queue_events=2,
        sse_write_timeout_seconds=30,
        max_body_bytes=1024 * 1024,
    )
    with run_server(settings) as running:
        yield running


def _small_window() -> httpx.AsyncHTTPTransport:
    # A fixed receive buffer: the window does not grow to the megabytes loopback's
    # autotuning would give a reader that is not reading.
    return httpx.AsyncHTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)])


async def test_an_idle_stream_gets_heartbeat_comments(tight: RunningServer):
    org = user_id()
    async with httpx.AsyncClient(base_url=tight.url, timeout=30) as http:
        room_id = await create_room(http, tight, org)
        async with open_stream(http, f"/api/rooms/{room_id}/stream", headers=tight.auth(org)) as s:
            await s.wait(lambda s: len(s.comments) >= 2)
        assert s.events == []
        assert s.comments[:2] == ["keep-alive", "keep-alive"]


_CHUNKS = 24
"""Events of ~0.9 MB: about five times what the kernel's buffers hold."""


async def test_a_slow_reader_is_cut_off_with_a_typed_error_and_resumes(tight: RunningServer):
    org = user_id()
    headers = tight.auth(org)
    app = tight.app_auth("bulk")
    blob = {"blob": "x" * 900_000}
    async with httpx.AsyncClient(base_url=tight.url, timeout=60) as http:
        room_id = await create_room(http, tight, org)
        url = f"/api/rooms/{room_id}/stream"
        async with (
            httpx.AsyncClient(base_url=tight.url, timeout=60, transport=_small_window()) as slow,
            slow.stream("GET", url, headers=headers) as response,
        ):
            assert response.status_code == 200
            # The reader takes nothing while more is committed than the kernel's
            # buffers on both ends hold (~4 MB on Linux's defaults).
            i = 0
            while i < _CHUNKS:
                published = await http.post(
                    f"/api/rooms/{room_id}/events",
                    json={"event": "bulk:chunk", "data": {**blob, "i": i}},
                    headers=app,
                )
                if published.status_code == 429:  # the app limit, 10 a second per room
                    await asyncio.sleep(float(published.headers["Retry-After"]))
                    continue
                assert published.status_code == 201, published.text
                i += 1
            stream = SseStream(response)
            await asyncio.wait_for(stream.read(), 60)
        assert stream.ended
        last = stream.events[-1]
        assert last.event == "error"
        assert last.data["code"] == "SERVICE_UNAVAILABLE"
        assert last.data["details"]["reason"] == "slowReader"
        got = stream.seqs
        assert got == list(range(2, 2 + len(got)))  # a prefix, in order, no hole
        assert len(got) < _CHUNKS  # it was cut off
        assert last.data["details"]["lastEventId"] == got[-1]
        # Resuming from there delivers the rest, exactly.
        resume = {**headers, "Last-Event-ID": str(got[-1])}
        async with open_stream(http, url, headers=resume) as rest:
            await rest.wait_for_seq(_CHUNKS + 1)
        assert got + rest.seqs == list(range(2, _CHUNKS + 2))
