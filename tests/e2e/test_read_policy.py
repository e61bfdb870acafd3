"""The one read policy on every read path: a rejoined member never sees what happened
while they were out (docs/guarantees.md#one-read-policy).

The socket's paths (``room:subscribe`` replay, ``room:replay``) are checked by
tests/e2e/test_realtime.py::TestRejoinedMember; this module checks the REST log
and the SSE stream on the same history, and the notification streams' owner rule.
"""

from __future__ import annotations

import httpx

from ..conftest import RunningServer
from .sse_client import open_stream
from .support import create_room, rename_many, user_id


async def _left_and_rejoined(http: httpx.AsyncClient, server: RunningServer):
    """Join (2), leave (3), two renames while out (4, 5), rejoin (6), one rename (7)."""
    org, ann = user_id(), user_id()
    room_id = await create_room(http, server, org)
    participants = f"/api/rooms/{room_id}/participants"
    assert (await http.post(participants, headers=server.auth(ann))).status_code == 201
    assert (await http.delete(f"{participants}/me", headers=server.auth(ann))).status_code == 200
    await rename_many(http, server, org, room_id, 2, concurrency=1)
    assert (await http.post(participants, headers=server.auth(ann))).status_code == 201
    await rename_many(http, server, org, room_id, 1, concurrency=1)
    return org, ann, room_id


async def _log(http, server, who, room_id, after, limit=100):
    response = await http.get(
        f"/api/rooms/{room_id}/events",
        params={"after": after, "limit": limit},
        headers=server.auth(who),
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return [e["payload"]["seq"] for e in data["events"]], data


async def test_the_rest_log_hides_what_a_rejoined_member_missed_from_any_start(
    server: RunningServer, http: httpx.AsyncClient
):
    org, ann, room_id = await _left_and_rejoined(http, server)
    assert (await _log(http, server, ann, room_id, 0))[0] == [1, 2, 3, 6, 7]
    assert (await _log(http, server, ann, room_id, 3))[0] == [6, 7]
    assert (await _log(http, server, ann, room_id, 4))[0] == [6, 7]
    # The organizer's view is the whole log.
    assert (await _log(http, server, org, room_id, 0))[0] == [1, 2, 3, 4, 5, 6, 7]
    # Pages go by the log's seqs: a page of 2 from 3 is 4 and 5, both hidden, and
    # nextAfter still moves on, so a client paging to headSeq sees everything it may.
    seqs, data = await _log(http, server, ann, room_id, 3, limit=2)
    assert seqs == []
    assert data["nextAfter"] == 5
    assert data["headSeq"] == 7


async def test_the_sse_stream_hides_what_a_rejoined_member_missed_from_any_start(
    server: RunningServer, http: httpx.AsyncClient
):
    _, ann, room_id = await _left_and_rejoined(http, server)
    for start, expected in ((0, [1, 2, 3, 6, 7]), (3, [6, 7]), (4, [6, 7])):
        headers = {**server.auth(ann), "Last-Event-ID": str(start)}
        async with open_stream(http, f"/api/rooms/{room_id}/stream", headers=headers) as s:
            await s.wait_for_seq(7)
        assert s.seqs == expected, start


async def test_a_notification_stream_is_only_ever_the_callers_own(
    server: RunningServer, http: httpx.AsyncClient
):
    # There is no way to name another user's inbox: as a room it is not found.
    owner, other = user_id(), user_id()
    for url in (f"/api/rooms/user:{owner}/stream", f"/api/rooms/user:{owner}/events"):
        response = await http.get(url, headers=server.auth(other))
        assert response.status_code == 404, (url, response.text)
        assert response.json()["error"]["code"] == "ROOM_NOT_FOUND"
