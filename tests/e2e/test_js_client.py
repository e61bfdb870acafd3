"""Wire conformance with the official JavaScript ``socket.io-client`` (v4).

A Node client (``js/client.mjs``) that knows nothing of our Python code connects
with ``auth: {token}``, subscribes with ``lastSeq``, collects the replay (and any
live events), pages with ``room:replay`` and checks the bad-token refusal; this
module asserts what it saw against the contract.

Skipped, not failed, when ``node``/``npm`` are missing or the npm registry cannot
be reached: it is an extra conformance check, not a database dependency.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import RunningServer, unavailable
from .support import create_room, rename_many, user_id

JS_DIR = Path(__file__).parent / "js"
CLIENT = JS_DIR / "client.mjs"
INSTALL_TIMEOUT = 180
CLIENT_TIMEOUT = 30  # the script gives up by itself after 10 s
REPLAY_LIMIT = 5  # as in client.mjs

_UNREACHABLE = (
    "ENOTFOUND",
    "EAI_AGAIN",
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "ENETUNREACH",
    "EHOSTUNREACH",
    "ERR_SOCKET_TIMEOUT",
    "network request",
    "request to http",
    "proxy",
    "certificate",
)


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` executable, with ``socket.io-client`` installed next to the script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm must be on PATH for the socket.io-client conformance test")
    if not (JS_DIR / "node_modules" / "socket.io-client" / "package.json").is_file():
        try:
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund"],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            unavailable(f"npm install timed out after {INSTALL_TIMEOUT} s (registry unreachable?)")
        if done.returncode != 0:
            output = done.stdout + done.stderr
            if any(marker.lower() in output.lower() for marker in _UNREACHABLE):
                summary = [line for line in output.splitlines() if "npm error" in line][:3]
                unavailable(f"npm install cannot reach the registry: {' | '.join(summary)}")
            pytest.fail(f"npm install failed ({done.returncode}):\n{output}")
    return node


async def run_client(
    node: str, server: RunningServer, sub: str, room_id: str, last_seq: int, head: int
) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        node,
        str(CLIENT),
        server.url,
        server.token(sub),
        room_id,
        str(last_seq),
        str(head),
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"node client.mjs did not finish within {CLIENT_TIMEOUT} s")
    assert process.returncode == 0, f"client.mjs exited {process.returncode}: {stderr.decode()}"
    lines = stdout.decode().splitlines()
    assert len(lines) == 1, stdout.decode()
    result: dict[str, Any] = json.loads(lines[0])
    return result


def assert_events(result: dict[str, Any], room_id: str, last_seq: int, head: int) -> None:
    assert result["seqs"] == list(range(last_seq + 1, head + 1))
    assert result["extra"] == []  # nothing at or below lastSeq was replayed
    assert result["duplicates"] == 0
    events = result["events"]
    assert len({e["eventId"] for e in events}) == len(events)
    for event in events:
        assert event["roomId"] == room_id
        assert event["type"] == event["event"]  # the payload's type is the event name
        assert isinstance(event["eventId"], str)
        assert isinstance(event["timestamp"], str)
    expected = {1: "room:created"}
    assert [e["event"] for e in events] == [
        expected.get(seq, "room:updated") for seq in result["seqs"]
    ]


def assert_auth_error(result: dict[str, Any]) -> None:
    # Seed 003's text; the code is in err.data.
    assert result["authError"].startswith("Authentication failed: "), result["authError"]
    assert result["authErrorData"]["code"] == "AUTHENTICATION_FAILED"


async def room_with_events(server: RunningServer, count: int) -> tuple[str, str]:
    """A new room whose stream holds ``count`` events (created + renames)."""
    org = user_id()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        room_id = await create_room(http, server, org)
        await rename_many(http, server, org, room_id, count - 1, concurrency=1)
    return org, room_id


class TestSocketIoClientJs:
    async def test_subscribe_with_last_seq_replays_the_missed_events(self, server, node):
        org, room_id = await room_with_events(server, 20)
        last_seq, head = 5, 20

        result = await run_client(node, server, org, room_id, last_seq, head)

        assert_events(result, room_id, last_seq, head)
        ack = result["ack"]
        assert set(ack) == {"success", "room", "data"}  # seed 003 reads response.room
        assert ack["success"] is True
        assert ack["room"]["id"] == room_id
        assert set(ack["data"]) == {"roomId", "room", "headSeq", "fromSeq", "replaying", "replay"}
        assert ack["data"]["replay"] == {"truncated": False, "nextAfter": head}
        assert ack["data"]["roomId"] == room_id
        assert ack["data"]["room"] == ack["room"]
        assert ack["data"]["headSeq"] == head
        # The ack came first and said how many events follow.
        assert (ack["data"]["fromSeq"], ack["data"]["replaying"]) == (last_seq, head - last_seq)
        assert result["beforeAck"] == 0
        assert all(e["replayed"] for e in result["events"])
        assert result["subscribed"] == {
            "roomId": room_id,
            "headSeq": head,
            "replayed": head - last_seq,
            "replay": {"truncated": False, "nextAfter": head},
        }

        replay = result["replay"]
        assert replay["success"] is True
        page = replay["data"]
        assert [e["event"] for e in page["events"]] == ["room:updated"] * REPLAY_LIMIT
        assert [e["payload"]["seq"] for e in page["events"]] == list(
            range(last_seq + 1, last_seq + REPLAY_LIMIT + 1)
        )
        assert all(e["payload"]["roomId"] == room_id for e in page["events"])
        assert page["headSeq"] == head
        assert page["nextAfter"] == last_seq + REPLAY_LIMIT

        assert_auth_error(result)

    async def test_from_zero_with_live_writes_during_the_replay(self, server, node):
        org, room_id = await room_with_events(server, 20)
        live = 10
        head = 20 + live

        async def write_live() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                await rename_many(http, server, org, room_id, live, concurrency=1)

        result, _ = await asyncio.gather(
            run_client(node, server, org, room_id, 0, head), write_live()
        )

        # Replayed or live, every seq arrives once, in order, across the seam.
        assert_events(result, room_id, 0, head)
        assert result["ack"]["success"] is True
        assert 20 <= result["ack"]["data"]["headSeq"] <= head
        assert_auth_error(result)
