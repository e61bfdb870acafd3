"""CORS: development allows local dev servers' origins (REST and Socket.IO alike);
production allows exactly ROOMCAST_CORS_ORIGINS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import socketio

from roomcast.config import Environment, Settings

from ..conftest import JWT_SECRET, RunningServer, run_server

VITE = "http://localhost:5173"
LOOPBACK = "http://127.0.0.1:3000"
STRANGER = "http://evil.example"
LISTED = "https://app.example"


@pytest.fixture(scope="module")
def production(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    settings = Settings(
        env=Environment.PRODUCTION,
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("cors-prod")),
        cors_origins=(LISTED,),
    )
    with run_server(settings) as running:
        yield running


async def preflight(server: RunningServer, origin: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.options(
            "/api/rooms",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )


async def handshake(server: RunningServer, origin: str) -> bool:
    """Whether a Socket.IO connection sending ``Origin: origin`` is accepted.

    The Engine.IO handshake itself is asked first, as a browser's first polling GET:
    a refused origin is answered 400 there. Only an accepted one is then connected
    with the Socket.IO client (a refusal read through aiohttp can surface as a closed
    connection rather than as the client's ConnectionError)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        opened = await http.get(
            "/socket.io/", params={"EIO": "4", "transport": "polling"}, headers={"Origin": origin}
        )
    if opened.status_code != 200:
        assert opened.status_code == 400, opened.text
        return False
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(
            server.url,
            auth={"token": server.token("cors-user")},
            headers={"Origin": origin},
            transports=["polling"],  # the handshake's first request carries the Origin
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError:
        return False
    await client.disconnect()
    return True


@pytest.mark.parametrize("origin", [VITE, LOOPBACK, "http://localhost"])
async def test_development_allows_local_origins(server: RunningServer, origin: str):
    response = await preflight(server, origin)
    assert response.status_code in (200, 204), response.text
    assert response.headers["access-control-allow-origin"] == origin
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    async with httpx.AsyncClient(base_url=server.url) as http:
        read = await http.get("/api/rooms", headers={"Origin": origin, **server.auth("cors-user")})
    assert read.headers["access-control-allow-origin"] == origin
    assert await handshake(server, origin)


@pytest.mark.parametrize(
    "origin", [STRANGER, "http://localhost.evil.example", "https://localhost:5173", LISTED]
)
async def test_development_refuses_other_origins(server: RunningServer, origin: str):
    response = await preflight(server, origin)
    assert "access-control-allow-origin" not in response.headers
    assert not await handshake(server, origin)


async def test_production_allows_only_the_list(production: RunningServer):
    allowed = await preflight(production, LISTED)
    assert allowed.headers["access-control-allow-origin"] == LISTED
    assert await handshake(production, LISTED)
    for origin in (VITE, LOOPBACK, STRANGER):
        response = await preflight(production, origin)
        assert "access-control-allow-origin" not in response.headers
        assert not await handshake(production, origin)
