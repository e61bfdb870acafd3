"""Fixtures every end-to-end module shares (the server itself is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import socketio

from roomcast.client import RoomcastClient

from ..conftest import RunningServer, unavailable
from ..redis_server import EmbeddedRedis, EmbeddedRedisError
from .support import Recorder, Wire


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the session's server."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(params=[True, False], ids=["batch", "single"])
def batch(request: pytest.FixtureRequest) -> bool:
    """Every test through `connected` runs with `room:events` frames and without."""
    return bool(request.param)


@pytest.fixture
async def connected(server: RunningServer, batch: bool) -> AsyncIterator[Any]:
    clients: list[RoomcastClient] = []

    async def make(sub: str) -> tuple[RoomcastClient, Recorder]:
        client = RoomcastClient(server.url, server.token(sub), batch=batch)
        recorder = Recorder()
        client.on("*", recorder)
        await client.connect()
        clients.append(client)
        return client, recorder

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def raw_sockets() -> AsyncIterator[Any]:
    """``await raw_sockets(server, user)``: a plain python-socketio client on ``server``
    that records every message (its ``Wire``); all closed after the test."""
    opened: list[socketio.AsyncClient] = []

    async def make(server: RunningServer, sub: str) -> tuple[socketio.AsyncClient, Wire]:
        client = socketio.AsyncClient(reconnection=False)
        wire = Wire()
        client.on("*", wire.record)
        await client.connect(
            server.url, auth={"token": server.token(sub)}, transports=["websocket"]
        )
        opened.append(client)
        return client, wire

    yield make
    for client in opened:
        await client.disconnect()


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A redis-server for one module alone: the module may kill it, and no other
    module's nodes show in what it holds (stats, presence)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("own-redis"))
    try:
        server.start()
    except EmbeddedRedisError as exc:
        unavailable(f"cannot start an embedded Redis: {exc}")
    try:
        yield server
    finally:
        server.stop()
