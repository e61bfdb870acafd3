"""``GET /api/rooms``: the caller's rooms, newest first, in pages, with status and head seq."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ..conftest import RunningServer
from .support import create_room, join, user_id


async def mine(
    http: httpx.AsyncClient, server: RunningServer, who: str, **params: Any
) -> dict[str, Any]:
    response = await http.get("/api/rooms", params=params, headers=server.auth(who))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_lists_organized_and_joined_rooms_newest_first(
    http: httpx.AsyncClient, server: RunningServer
):
    alice, bob, carol = user_id(), user_id(), user_id()
    first = await create_room(http, server, alice, "first")
    bobs = await create_room(http, server, bob, "bob's")
    await join(http, server, bobs, alice)
    third = await create_room(http, server, alice, "third")
    await create_room(http, server, carol, "not alice's")
    data = await mine(http, server, alice)
    assert [r["id"] for r in data["rooms"]] == [third, bobs, first]
    assert data["nextCursor"] is None
    by_id = {r["id"]: r for r in data["rooms"]}
    assert by_id[bobs]["role"] == "participant"
    assert by_id[bobs]["organizerId"] == bob
    assert by_id[bobs]["headSeq"] == 2  # room:created, participant:joined
    assert by_id[first] | {"createdAt": None} == {
        "id": first,
        "name": "first",
        "status": "draft",
        "role": "organizer",
        "organizerId": alice,
        "createdAt": None,
        "headSeq": 1,
    }
    assert (await mine(http, server, user_id()))["rooms"] == []


async def test_follows_renames_status_roles_leaving_and_deletion(
    http: httpx.AsyncClient, server: RunningServer
):
    org, member = user_id(), user_id()
    room = await create_room(http, server, org)
    participant = await join(http, server, room, member)
    await http.patch(f"/api/rooms/{room}", json={"name": "renamed"}, headers=server.auth(org))
    await http.post(
        f"/api/rooms/{room}/status", json={"status": "active"}, headers=server.auth(org)
    )
    promoted = await http.patch(
        f"/api/rooms/{room}/participants/{participant}",
        json={"role": "moderator"},
        headers=server.auth(org),
    )
    assert promoted.status_code == 200, promoted.text
    [row] = (await mine(http, server, member))["rooms"]
    assert (row["name"], row["status"], row["role"], row["headSeq"]) == (
        "renamed",
        "active",
        "moderator",
        5,  # created, joined, updated, status_changed, participant:updated
    )
    left = await http.delete(f"/api/rooms/{room}/participants/me", headers=server.auth(member))
    assert left.status_code == 200, left.text
    assert (await mine(http, server, member))["rooms"] == []
    assert len((await mine(http, server, org))["rooms"]) == 1
    deleted = await http.delete(f"/api/rooms/{room}", headers=server.auth(org))
    assert deleted.status_code == 200, deleted.text
    assert (await mine(http, server, org))["rooms"] == []


async def test_pages_with_a_cursor_and_filters(http: httpx.AsyncClient, server: RunningServer):
    org, other = user_id(), user_id()
    own = [await create_room(http, server, org, f"room {i}") for i in range(5)]
    joined = await create_room(http, server, other, "joined")
    await join(http, server, joined, org)
    await http.post(
        f"/api/rooms/{own[1]}/status", json={"status": "active"}, headers=server.auth(org)
    )
    expected = [joined, *reversed(own)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        data = await mine(http, server, org, **params)
        pages += 1
        seen += [r["id"] for r in data["rooms"]]
        cursor = data["nextCursor"]
        if cursor is None:
            break
        assert len(data["rooms"]) == 2
    assert seen == expected
    assert pages == 3
    assert [r["id"] for r in (await mine(http, server, org, status="active"))["rooms"]] == [own[1]]
    organized = await mine(http, server, org, role="organizer")
    assert [r["id"] for r in organized["rooms"]] == list(reversed(own))
    participating = await mine(http, server, org, role="participant", status="draft")
    assert [r["id"] for r in participating["rooms"]] == [joined]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "open"},
        {"role": "owner"},
        {"limit": 0},
        {"limit": 101},
        {"limit": "many"},
        {"cursor": "not-a-cursor"},
        {"cursor": "W10"},  # base64 of "[]"
        {"cursor": "x" * 600},
    ],
)
async def test_bad_parameters_are_invalid_payload(
    http: httpx.AsyncClient, server: RunningServer, params: dict[str, Any]
):
    response = await http.get("/api/rooms", params=params, headers=server.auth(user_id()))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "INVALID_PAYLOAD"


async def test_needs_a_token(http: httpx.AsyncClient):
    response = await http.get("/api/rooms")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTHENTICATION_FAILED"
