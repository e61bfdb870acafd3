"""Token revocation end to end: REST, socket connect, a second node, the CLI.

Real uvicorn servers on the same PostgreSQL database, real Socket.IO clients.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import socketio

from roomcast import cli
from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .support import bearer, token, user_id


def jti_of(value: str) -> str:
    return str(jwt.decode(value, options={"verify_signature": False})["jti"])


async def connect_error(url: str, value: str) -> dict[str, Any]:
    """The connect_error a socket gets with this token (fails the test if it connects)."""
    client = socketio.AsyncClient(reconnection=False)
    errors: asyncio.Queue[Any] = asyncio.Queue()
    client.on("connect_error", errors.put)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, auth={"token": value}, transports=["websocket"])
    return dict(await asyncio.wait_for(errors.get(), 10))


async def rooms_status(http: httpx.AsyncClient, value: str) -> httpx.Response:
    # Any authenticated route: an unknown room is 404 for a valid token, 401 otherwise.
    return await http.get("/api/rooms/room_nope", headers=bearer(value))


class TestRevokeOwnToken:
    async def test_a_revoked_token_is_refused_on_rest_and_on_socket_connect(self, server, http):
        sub = user_id()
        doomed, other = token(server, sub), token(server, sub)
        assert (await rooms_status(http, doomed)).status_code == 404

        response = await http.post("/api/auth/revoke", headers=bearer(doomed))
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["jti"] == jti_of(doomed)
        assert data["expiresAt"].startswith(time.strftime("%Y-", time.gmtime()))

        refused = await rooms_status(http, doomed)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "AUTHENTICATION_FAILED"
        assert "revoked" in refused.json()["error"]["message"]
        error = await connect_error(server.url, doomed)
        assert error["data"]["code"] == "AUTHENTICATION_FAILED"
        assert "revoked" in error["message"]
        # Only that token: the same user's other token still works.
        assert (await rooms_status(http, other)).status_code == 404

    async def test_revoking_twice_is_harmless(self, server, http):
        doomed = token(server, user_id())
        assert (await http.post("/api/auth/revoke", headers=bearer(doomed))).status_code == 200
        again = await http.post("/api/auth/revoke", headers=bearer(doomed))
        assert again.status_code == 401  # the token no longer authenticates anything

    async def test_a_token_without_jti_cannot_be_revoked(self, server, http):
        claims = {
            "sub": user_id(),
            "iss": server.settings.jwt_issuer,
            "aud": server.settings.jwt_audience,
            "exp": int(time.time()) + 600,
        }
        no_jti = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
        response = await http.post("/api/auth/revoke", headers=bearer(no_jti))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "INVALID_PAYLOAD"

    async def test_a_malformed_body_is_invalid_payload(self, server, http):
        response = await http.post(
            "/api/auth/revoke", content=b'{"jti": 5}', headers=bearer(token(server, user_id()))
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "INVALID_PAYLOAD"


class TestRevokeAnyToken:
    async def test_an_admin_revokes_someone_elses_token_by_jti(self, server, http):
        victim = token(server, user_id())
        admin = token(server, user_id(), roles=["admin"])
        response = await http.post(
            "/api/auth/revoke", json={"jti": jti_of(victim)}, headers=bearer(admin)
        )
        assert response.status_code == 200, response.text
        assert (await rooms_status(http, victim)).status_code == 401
        assert (await rooms_status(http, admin)).status_code == 404

    async def test_anyone_else_may_not(self, server, http):
        victim = token(server, user_id())
        response = await http.post(
            "/api/auth/revoke",
            json={"jti": jti_of(victim)},
            headers=bearer(token(server, user_id())),
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "PERMISSION_DENIED"
        assert (await rooms_status(http, victim)).status_code == 404


@pytest.fixture(scope="module")
def second_node(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Another node on the session server's database; a long refresh period, so only
    the NOTIFY can tell it in time."""
    settings = Settings(
        database_url=server.settings.database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("second-node")),
        relay=False,
        revocation_refresh_seconds=3600,
    )
    with run_server(settings) as running:
        yield running


async def until_refused(url: str, value: str) -> httpx.Response:
    """Ask the node until it refuses the token (it hears of revocations asynchronously)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as other, asyncio.timeout(10):
        while True:
            response = await rooms_status(other, value)
            if response.status_code == 401:
                return response


class TestEveryNode:
    async def test_a_token_revoked_on_one_node_is_refused_on_another(
        self, server, second_node, http
    ):
        doomed = token(server, user_id())
        async with httpx.AsyncClient(base_url=second_node.url, timeout=30) as other:
            assert (await rooms_status(other, doomed)).status_code == 404

        assert (await http.post("/api/auth/revoke", headers=bearer(doomed))).status_code == 200

        refused = await until_refused(second_node.url, doomed)
        assert "revoked" in refused.json()["error"]["message"]
        error = await connect_error(second_node.url, doomed)
        assert "revoked" in error["message"]

    def test_the_cli_revokes_by_jti_on_running_nodes(
        self, server, second_node, monkeypatch, capsys
    ):
        doomed = token(server, user_id())
        monkeypatch.setenv("DATABASE_URL", str(server.settings.database_url))
        monkeypatch.setenv("ROOMCAST_DATA_DIR", str(server.settings.data_dir))
        assert cli.main(["token", "revoke", "--jti", jti_of(doomed)]) == 0
        assert jti_of(doomed) in capsys.readouterr().out

        for node in (server, second_node):
            deadline = time.monotonic() + 10
            with httpx.Client(base_url=node.url, timeout=30) as sync_http:
                while True:  # each node hears of it on its own connection
                    status = sync_http.get(
                        "/api/rooms/room_nope", headers=bearer(doomed)
                    ).status_code
                    if status == 401 or time.monotonic() > deadline:
                        break
            assert status == 401

    def test_the_cli_needs_a_jti(self, capsys):
        assert cli.main(["token", "revoke"]) == 2
        assert "--jti" in capsys.readouterr().err


async def ended_by_revocation(url: str, value: str, revoke: Any) -> dict[str, Any]:
    """Connect with ``value``, run ``revoke()``, return the ``token:expired`` notice the
    socket got before the server disconnected it."""
    client = socketio.AsyncClient(reconnection=False)
    notices: asyncio.Queue[Any] = asyncio.Queue()
    gone = asyncio.Event()
    client.on("token:expired", notices.put)
    client.on("disconnect", lambda *_: gone.set())
    await client.connect(url, auth={"token": value}, transports=["websocket"])
    try:
        await revoke()
        notice = await asyncio.wait_for(notices.get(), 10)
        await asyncio.wait_for(gone.wait(), 10)
    finally:
        await client.disconnect()
    return dict(notice)


class TestOpenSockets:
    async def test_revoking_a_token_ends_its_open_sockets_on_every_node(
        self, server, second_node, http
    ):
        doomed = token(server, user_id())

        async def revoke() -> None:
            response = await http.post("/api/auth/revoke", headers=bearer(doomed))
            assert response.status_code == 200

        # The socket is on the other node: only the NOTIFY tells it.
        notice = await ended_by_revocation(second_node.url, doomed, revoke)
        assert notice["reason"] == "revoked"

    async def test_other_tokens_sockets_stay_open(self, server, http):
        keeper, doomed = token(server, user_id()), token(server, user_id())
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(server.url, auth={"token": keeper}, transports=["websocket"])
        try:

            async def revoke() -> None:
                response = await http.post("/api/auth/revoke", headers=bearer(doomed))
                assert response.status_code == 200

            await ended_by_revocation(server.url, doomed, revoke)
            ack = await client.call(
                "room:replay", {"roomId": "room_nope", "afterSeq": 0}, timeout=10
            )
            assert ack["error"]["code"] == "ROOM_NOT_FOUND"  # still connected, still answered
        finally:
            await client.disconnect()
