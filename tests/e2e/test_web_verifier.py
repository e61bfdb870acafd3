"""The room page's verifier (clients/web/verify.js, WebCrypto) against the Python one
(``roomcast audit verify``) on the same real log, read through
``GET /api/rooms/{roomId}/chain``: the same verdicts, and tampering is caught."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from roomcast.audit.verify import verify

from .support import create_room, join, user_id

SCRIPT = "tests/e2e/verify_room.mjs"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        from ..conftest import unavailable

        unavailable("node is needed to run the browser verifier")
    assert found is not None
    return found


async def _ok(response):
    assert response.status_code in (200, 201), response.text
    return response.json()["data"]


async def busy_room(http, server) -> tuple[str, str, int]:
    """A room with joins, a leave and a rejoin, a moderator, draws, a removed winner,
    awkward characters in its name, then closed (the seed revealed)."""
    org = user_id()
    room_id = await create_room(http, server, org, name='Lottery "2027" ✨ \\ tab\there\nnext')
    people = [user_id() for _ in range(6)]
    parts = [await join(http, server, room_id, who) for who in people]
    auth = server.auth(org)
    prize = (
        await _ok(
            await http.post(
                f"/api/rooms/{room_id}/prizes",
                json={"name": "Prize ü", "quantity": 4},
                headers=auth,
            )
        )
    )["prize"]["id"]
    await _ok(
        await http.patch(
            f"/api/rooms/{room_id}/participants/{parts[0]}",
            json={"role": "moderator"},
            headers=auth,
        )
    )
    await _ok(
        await http.post(f"/api/rooms/{room_id}/status", json={"status": "active"}, headers=auth)
    )
    first = (
        await _ok(
            await http.post(f"/api/rooms/{room_id}/draws", json={"prizeId": prize}, headers=auth)
        )
    )["winner"]
    await _ok(
        await http.delete(f"/api/rooms/{room_id}/participants/me", headers=server.auth(people[3]))
    )
    await join(http, server, room_id, people[3])
    await _ok(await http.post(f"/api/rooms/{room_id}/draws", json={"prizeId": prize}, headers=auth))
    await _ok(await http.delete(f"/api/rooms/{room_id}/winners/{first['id']}", headers=auth))
    await _ok(await http.post(f"/api/rooms/{room_id}/draws", json={"prizeId": prize}, headers=auth))
    await _ok(await http.post(f"/api/rooms/{room_id}/draws", json={"prizeId": prize}, headers=auth))
    closed = await _ok(
        await http.post(f"/api/rooms/{room_id}/status", json={"status": "closed"}, headers=auth)
    )
    return org, room_id, int(closed["version"])


async def run_verifier(node, server, org, room_id):
    process = await asyncio.create_subprocess_exec(
        node,
        SCRIPT,
        server.url,
        server.token(org),
        room_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout)


async def test_the_browser_verifier_agrees_with_the_python_one(http, server, server_pool, node):
    org, room_id, head = await busy_room(http, server)

    result = await run_verifier(node, server, org, room_id)
    async with server_pool.acquire() as conn:
        (report,) = await verify(conn, room_id, progress=False, report=lambda _: None)

    assert report.ok, report.line()
    assert report.verified == 4
    assert result["failure"] is None
    assert result["seq"] == head == report.head_seq
    assert list(result["verdicts"].values()) == ["seed"] * report.verified

    tampered = result["tampered"]
    assert tampered["data"]["seq"] == tampered["targetSeq"]
    assert "hash" in tampered["data"]["reason"]
    forged = tampered["forgedWinner"]
    assert forged["chainFailure"] is None  # the chain was recomputed after the forgery
    assert forged["verdict"] == "fail"  # but the revealed seed picks someone else


async def test_before_the_reveal_winners_are_chain_verified(http, server, node):
    org = user_id()
    room_id = await create_room(http, server, org)
    for _ in range(3):
        await join(http, server, room_id, user_id())
    auth = server.auth(org)
    prize = (
        await _ok(await http.post(f"/api/rooms/{room_id}/prizes", json={"name": "P"}, headers=auth))
    )["prize"]["id"]
    await _ok(
        await http.post(f"/api/rooms/{room_id}/status", json={"status": "active"}, headers=auth)
    )
    await _ok(await http.post(f"/api/rooms/{room_id}/draws", json={"prizeId": prize}, headers=auth))

    result = await run_verifier(node, server, org, room_id)

    assert result["failure"] is None
    assert list(result["verdicts"].values()) == ["chain"]


async def test_the_chain_endpoint_is_for_members_only(http, server):
    org = user_id()
    room_id = await create_room(http, server, org)
    page = await http.get(f"/api/rooms/{room_id}/chain", headers=server.auth(org))
    assert page.status_code == 200
    body = page.json()["data"]
    assert body["headSeq"] == 1
    assert body["nextAfter"] == 1
    (row,) = body["events"]
    assert set(row) == {
        "seq",
        "eventId",
        "type",
        "data",
        "actorId",
        "recordedAt",
        "prevHash",
        "hash",
    }
    assert isinstance(row["data"], str)
    assert row["prevHash"] == "0" * 64
    stranger = await http.get(f"/api/rooms/{room_id}/chain", headers=server.auth(user_id()))
    assert stranger.status_code == 403
    assert stranger.json()["error"]["code"] == "PERMISSION_DENIED"


async def test_admin_rooms_lists_heads_and_backlog(http, server):
    from .support import token

    org = user_id()
    room_id = await create_room(http, server, org)
    admin = {"Authorization": f"Bearer {token(server, 'ops', roles=['admin'])}"}
    response = await http.get("/api/admin/rooms", params={"roomId": room_id}, headers=admin)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    (line,) = [r for r in data["rooms"] if r["roomId"] == room_id]
    assert line["headSeq"] == 1
    assert len(line["chainHead"]) == 64
    assert line["outboxDepth"] >= 0
    assert line["relayLagSeconds"] >= 0
    assert isinstance(data["nodeId"], str)
    refused = await http.get("/api/admin/rooms", headers=server.auth(org))
    assert refused.status_code == 403
