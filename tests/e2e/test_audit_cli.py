"""``roomcast audit`` as a separate process next to the running server: follow, verify.

The log is made through the REST API (the server on uvicorn); the audit reads
the same PostgreSQL as the server, as an operator would run it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import httpx
import pytest

from roomcast.domain import commands
from roomcast.domain.state import UserRef
from roomcast.outbox.store import EventStore
from roomcast.service.rooms import RoomService

from ..conftest import RunningServer
from ..helpers import now
from .support import user_id

LINE_TIMEOUT = 20


class Api:
    def __init__(self, http: httpx.AsyncClient, server: RunningServer) -> None:
        self.http = http
        self.server = server

    async def call(self, method: str, path: str, who: str, status: int = 200, **kw: Any) -> Any:
        response = await self.http.request(
            method, path, headers=self.server.auth(who, who.title()), **kw
        )
        assert response.status_code == status, response.text
        return response.json()["data"]


@pytest.fixture
def api(http: httpx.AsyncClient, server: RunningServer) -> Api:
    return Api(http, server)


def environment(server: RunningServer) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = str(server.settings.database_url)
    return env


async def audit(server: RunningServer, *args: str) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "roomcast",
        "audit",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(server),
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def new_room(api: Api, organizer: str) -> str:
    data = await api.call("POST", "/api/rooms", organizer, 201, json={"name": "Lottery"})
    return str(data["room"]["id"])


async def test_a_lottery_made_over_rest_verifies_draw_by_draw(api: Api, server: RunningServer):
    org = user_id()
    room_id = await new_room(api, org)
    for _ in range(3):
        await api.call("POST", f"/api/rooms/{room_id}/participants", user_id(), 201)
    prize = await api.call(
        "POST", f"/api/rooms/{room_id}/prizes", org, 201, json={"name": "TV", "quantity": 2}
    )
    activated = await api.call(
        "POST", f"/api/rooms/{room_id}/status", org, json={"status": "active"}
    )
    [change] = activated["events"]
    assert change["event"] == "room:status_changed"
    commitment = change["payload"]["seedCommitment"]
    assert len(commitment) == 64
    for _ in range(2):
        drawn = await api.call(
            "POST", f"/api/rooms/{room_id}/draws", org, 201, json={"prizeId": prize["prize"]["id"]}
        )
        assert drawn["winner"]["prizeId"] == prize["prize"]["id"]

    code, out, err = await audit(server, "verify", room_id)
    assert (code, err) == (0, "")
    assert out == (
        f"OK {room_id}: 8 events, hash chain intact up to the head; "
        "2 draws not yet verifiable: seed not revealed\n"
    )

    closed = await api.call("POST", f"/api/rooms/{room_id}/status", org, json={"status": "closed"})
    reveal = closed["events"][0]["payload"]["seedReveal"]
    assert len(reveal) == 64

    code, out, err = await audit(server, "verify", room_id)
    assert (code, err) == (0, "")
    assert out == f"OK {room_id}: 9 events, hash chain intact up to the head; 2 draws verified\n"


async def test_deleting_an_active_room_reveals_its_seed(api: Api, server: RunningServer):
    org = user_id()
    room_id = await new_room(api, org)
    await api.call("POST", f"/api/rooms/{room_id}/participants", user_id(), 201)
    prize = await api.call("POST", f"/api/rooms/{room_id}/prizes", org, 201, json={"name": "TV"})
    await api.call("POST", f"/api/rooms/{room_id}/status", org, json={"status": "active"})
    await api.call(
        "POST", f"/api/rooms/{room_id}/draws", org, 201, json={"prizeId": prize["prize"]["id"]}
    )

    deleted = await api.call("DELETE", f"/api/rooms/{room_id}", org)

    assert len(deleted["events"][0]["payload"]["seedReveal"]) == 64
    code, out, _ = await audit(server, "verify", room_id)
    assert (code, out.endswith("; 1 draws verified\n")) == (0, True), out


class Follower:
    """``roomcast audit follow`` in a child process, read line by line."""

    def __init__(self, child: asyncio.subprocess.Process) -> None:
        self.child = child

    async def line(self) -> dict[str, Any]:
        assert self.child.stdout is not None
        raw = await asyncio.wait_for(self.child.stdout.readline(), timeout=LINE_TIMEOUT)
        assert raw, "follow exited"
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    async def stop(self, signum: int) -> tuple[int, str]:
        self.child.send_signal(signum)
        _, err = await asyncio.wait_for(self.child.communicate(), timeout=LINE_TIMEOUT)
        assert self.child.returncode is not None
        return self.child.returncode, err.decode()


async def follow(server: RunningServer, *args: str) -> Follower:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "roomcast",
        "audit",
        "follow",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(server),
    )
    return Follower(child)


async def test_follow_prints_an_event_committed_after_it_started_woken_by_notify(
    api: Api, server: RunningServer
):
    """A 60 s poll: only the NOTIFY the server sends after each commit can wake it in time."""
    org = user_id()
    room_id = await new_room(api, org)
    follower = await follow(server, room_id, "--json", "-n", "1", "--poll", "60")
    try:
        first = await follower.line()  # the last event so far: follow is listening now
        assert (first["seq"], first["type"]) == (1, "room:created")

        guest = user_id()
        await api.call("POST", f"/api/rooms/{room_id}/participants", guest, 201)
        joined = await follower.line()
        assert (joined["seq"], joined["type"], joined["actorId"]) == (
            2,
            "participant:joined",
            guest,
        )
        assert joined["data"]["participant"]["userId"] == guest

        await api.call("PATCH", f"/api/rooms/{room_id}", org, json={"name": "Renamed"})
        assert (await follower.line())["seq"] == 3
    finally:
        code, err = await follower.stop(signal.SIGINT)
    assert (code, err) == (0, "")


async def test_follow_polls_for_commits_nobody_notified_and_stops_on_sigterm(
    api: Api, server: RunningServer, server_pool
):
    org = user_id()
    room_id = await new_room(api, org)
    follower = await follow(server, room_id, "--json", "--after-seq", "0", "--poll", "0.2")
    try:
        assert (await follower.line())["seq"] == 1
        # Straight through a service without a commit signal: no NOTIFY at all.
        quiet = RoomService(EventStore(server_pool))
        renaming = commands.UpdateRoom(
            actor=UserRef(id=org, name="Org"), at=now(), name="Quietly renamed"
        )
        await quiet.execute(room_id, renaming)
        renamed = await follower.line()
        assert (renamed["seq"], renamed["type"]) == (2, "room:updated")
    finally:
        code, err = await follower.stop(signal.SIGTERM)
    assert (code, err) == (0, "")


async def test_follow_an_unknown_room_is_one_line(server: RunningServer):
    code, out, err = await audit(server, "follow", "room_nope")

    assert (code, out, err) == (1, "", "roomcast audit: no such room: room_nope\n")
