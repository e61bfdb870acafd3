"""The built-in token issuer: sign in by name, refresh, rotation, reuse revokes the family."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .support import bearer


async def sign_in(http: httpx.AsyncClient, name: str, **extra: Any) -> dict[str, Any]:
    response = await http.post("/api/auth/token", json={"name": name, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_signing_in_by_name_gives_a_pair_that_authenticates(http: httpx.AsyncClient):
    body = await sign_in(http, "Alice Liddell")
    data = body["data"]
    assert body["success"] is True
    # Seed 003 reads data.accessToken from the parsed body: the fields are on top too.
    assert body["accessToken"] == data["accessToken"]
    assert body["refreshToken"] == data["refreshToken"]
    assert body["expiresIn"] == data["expiresIn"] == 900
    assert data["tokenType"] == "Bearer"
    assert data["user"] == {"id": "alice-liddell", "name": "Alice Liddell"}
    assert data["refreshToken"].startswith("rt_")
    rooms = await http.get("/api/rooms", headers=bearer(data["accessToken"]))
    assert rooms.status_code == 200, rooms.text
    created = await http.post(
        "/api/rooms", json={"name": "Tea party"}, headers=bearer(data["accessToken"])
    )
    assert created.json()["data"]["room"]["organizerId"] == "alice-liddell"


async def test_the_same_name_signs_in_as_the_same_user(http: httpx.AsyncClient):
    first = (await sign_in(http, "Zoë"))["data"]["user"]
    again = (await sign_in(http, "  zoë "))["data"]["user"]
    other = (await sign_in(http, "Zoe"))["data"]["user"]
    assert first["id"] == again["id"] != other["id"]
    assert again["name"] == "zoë"


async def test_a_refresh_rotates_and_the_old_token_is_used_up(http: httpx.AsyncClient):
    first = (await sign_in(http, "Rotating Rita"))["data"]
    response = await http.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert response.status_code == 200, response.text
    second = response.json()["data"]
    assert second["refreshToken"] != first["refreshToken"]
    assert second["accessToken"] != first["accessToken"]
    assert second["user"] == first["user"]
    # The newest one refreshes again, and so on.
    third = await http.post("/api/auth/refresh", json={"refreshToken": second["refreshToken"]})
    assert third.status_code == 200, third.text
    assert response.headers["cache-control"] == "no-store"


async def test_a_reused_refresh_token_revokes_its_whole_family(
    http: httpx.AsyncClient, server: RunningServer
):
    first = (await sign_in(http, "Victim Vera"))["data"]
    rotated = (
        await http.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    ).json()["data"]
    # A live socket opened with the family's newest access token.
    sio = socketio.AsyncClient(reconnection=False)
    ended: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_expired(data: Any) -> None:
        if not ended.done():
            ended.set_result(data)

    sio.on("token:expired", on_expired)
    await sio.connect(server.url, auth={"token": rotated["accessToken"]}, transports=["websocket"])
    try:
        # Someone else presents the first refresh token again: it was stolen.
        reuse = await http.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
        assert reuse.status_code == 401
        error = reuse.json()["error"]
        assert error["code"] == "AUTHENTICATION_FAILED"
        assert error["details"] == {"reason": "reused"}
        # The rightful holder's newest refresh token is gone too…
        latest = await http.post(
            "/api/auth/refresh", json={"refreshToken": rotated["refreshToken"]}
        )
        assert latest.status_code == 401
        assert latest.json()["error"]["details"] == {"reason": "revoked"}
        # …and every access token of the family is refused, on REST and on sockets.
        for access in (first["accessToken"], rotated["accessToken"]):
            refused = await http.get("/api/rooms", headers=bearer(access))
            assert refused.status_code == 401
            assert "revoked" in refused.json()["error"]["message"]
        notice = await asyncio.wait_for(ended, 10)
        assert notice["reason"] == "revoked"
    finally:
        await sio.disconnect()
    # Signing in again starts a new family.
    fresh = (await sign_in(http, "Victim Vera"))["data"]
    assert (await http.get("/api/rooms", headers=bearer(fresh["accessToken"]))).status_code == 200


async def test_two_refreshes_racing_with_one_token_count_as_reuse(http: httpx.AsyncClient):
    token = (await sign_in(http, "Racing Rae"))["data"]["refreshToken"]
    answers = await asyncio.gather(
        *(http.post("/api/auth/refresh", json={"refreshToken": token}) for _ in range(2))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 401]
    [won] = [a.json()["data"] for a in answers if a.status_code == 200]
    again = await http.post("/api/auth/refresh", json={"refreshToken": won["refreshToken"]})
    assert again.status_code == 401  # the family is revoked


async def test_the_body_is_read_whatever_its_content_type(http: httpx.AsyncClient):
    """Seed 003's fetch sends JSON with no Content-Type (a browser says text/plain)."""
    token = (await sign_in(http, "Plain Pat"))["data"]["refreshToken"]
    response = await http.post(
        "/api/auth/refresh",
        content=f'{{"refreshToken": "{token}"}}',
        headers={"content-type": "text/plain;charset=UTF-8"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/auth/token", b"{}", 400, "INVALID_PAYLOAD"),
        ("/api/auth/token", b'{"name": ""}', 400, "INVALID_PAYLOAD"),
        ("/api/auth/token", b'{"name": "   "}', 400, "INVALID_PAYLOAD"),
        ("/api/auth/token", b'{"name": "' + b"x" * 65 + b'"}', 400, "INVALID_PAYLOAD"),
        ("/api/auth/token", b'{"name": "a", "admin": true}', 400, "INVALID_PAYLOAD"),
        ("/api/auth/token", b"not json", 400, "INVALID_PAYLOAD"),
        ("/api/auth/token", b'{"name": 5}', 400, "INVALID_PAYLOAD"),
        ("/api/auth/refresh", b"", 400, "INVALID_PAYLOAD"),
        ("/api/auth/refresh", b'{"refreshToken": 1}', 400, "INVALID_PAYLOAD"),
        ("/api/auth/refresh", b'{"refreshToken": "nope"}', 401, "AUTHENTICATION_FAILED"),
        ("/api/auth/refresh", b'{"refreshToken": "rt_unknown"}', 401, "AUTHENTICATION_FAILED"),
        ("/api/auth/refresh", b"[1, 2]", 400, "INVALID_PAYLOAD"),
    ],
)
async def test_bad_input_gets_its_typed_error(
    http: httpx.AsyncClient, path: str, body: bytes, status: int, code: str
):
    response = await http.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == code


async def test_an_access_token_cannot_refresh(http: httpx.AsyncClient):
    access = (await sign_in(http, "Confused Cy"))["data"]["accessToken"]
    response = await http.post("/api/auth/refresh", json={"refreshToken": access})
    assert response.status_code == 401


@pytest.fixture(scope="module")
def production(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``make(**settings)``: a production node (each one closed after the module)."""
    import contextlib

    with contextlib.ExitStack() as stack:

        def make(**extra: Any) -> RunningServer:
            settings = Settings(
                env="production",  # type: ignore[arg-type]
                database_url=database_url,
                jwt_secret=JWT_SECRET,
                data_dir=Path(tmp_path_factory.mktemp("prod")),
                **extra,
            )
            return stack.enter_context(run_server(settings))

        yield make


async def test_production_has_no_issuer_unless_configured(production: Any):
    server = production()
    async with httpx.AsyncClient(base_url=server.url) as http:
        for path in ("/api/auth/token", "/api/auth/refresh"):
            response = await http.post(path, json={"name": "Mallory"})
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "NOT_FOUND"
            assert "ROOMCAST_TOKEN_ISSUER" in response.json()["error"]["message"]


async def test_an_operator_turns_it_on_with_a_passcode(production: Any):
    server = production(token_issuer=True, signin_passcode="open sesame")
    async with httpx.AsyncClient(base_url=server.url) as http:
        for wrong in ({}, {"passcode": "open sesam"}):
            response = await http.post("/api/auth/token", json={"name": "Ali", **wrong})
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "AUTHENTICATION_FAILED"
        body = await sign_in(http, "Ali", passcode="open sesame")
        rooms = await http.get("/api/rooms", headers=bearer(body["accessToken"]))
        assert rooms.status_code == 200
