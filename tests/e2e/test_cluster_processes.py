"""The cluster's process model: two `roomcast gateway` processes and one `roomcast relay`
on one PostgreSQL and a Redis of this module's own (real subprocesses, real SIGKILL).

An event written through one gateway reaches clients on both, published by the
relay process through Redis (the gateways run no relay, and their position
checks are set far apart so that they cannot be what delivers it). Every
gateway's connection counts are in every gateway's `/api/admin/stats`, and a
SIGKILLed gateway drops out of them within `ROOMCAST_STATS_TTL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from roomcast.client import RoomcastClient
from roomcast.tokens import mint

from ..conftest import JWT_SECRET
from ..redis_server import EmbeddedRedis
from ..serve_process import free_port
from .support import Recorder, bearer, create_room, user_id
from .test_relay_processes import RelayProcess

STATS_TTL = 1.5
"""Seconds after which a silent gateway drops out of the others' admin stats."""


class GatewayProcess:
    """``roomcast gateway`` in a subprocess on a port of its own."""

    def __init__(self, database_url: str, redis_url: str, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.node_id = f"gw-{uuid.uuid4().hex[:6]}"
        self.log = data_dir / f"{self.node_id}.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "ROOMCAST_JWT_SECRET": JWT_SECRET,
            "ROOMCAST_DATA_DIR": str(data_dir),
            "ROOMCAST_NODE_ID": self.node_id,
            "ROOMCAST_STATS_TTL": str(STATS_TTL),
            # Far apart: a broadcast missing from Redis would not be refilled in time.
            "ROOMCAST_POSITION_CHECK": "60",
            "ROOMCAST_REST_RATE_LIMIT": "0",
            "ROOMCAST_LOG_LEVEL": "warning",
        }
        self.process: asyncio.subprocess.Process | None = None

    def token(self, sub: str, roles: list[str] | None = None) -> str:
        return mint(
            secret=JWT_SECRET,
            sub=sub,
            name=None,
            issuer="roomcast",
            audience="roomcast",
            ttl_seconds=3600,
            extra={"roles": roles} if roles else None,
        )

    def auth(self, sub: str) -> dict[str, str]:
        return bearer(self.token(sub))

    async def start(self) -> GatewayProcess:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "roomcast", "gateway", "--port", str(self.port),
                env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"roomcast gateway exited: {self.log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/health")).status_code == 200:
                        return self
                # A child's readiness has no event to await: poll its /health.
                await asyncio.sleep(0.1)
        raise RuntimeError(f"roomcast gateway did not answer: {self.log.read_text()[-2000:]}")

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            await self.process.wait()


@pytest.fixture
async def cluster(
    own_database_url: str, own_redis: EmbeddedRedis, tmp_path: Path
) -> AsyncIterator[tuple[GatewayProcess, GatewayProcess, RelayProcess]]:
    a = GatewayProcess(own_database_url, own_redis.url, tmp_path)
    b = GatewayProcess(own_database_url, own_redis.url, tmp_path)
    relay = RelayProcess(own_database_url, own_redis.url)
    try:
        await asyncio.gather(a.start(), b.start(), relay.start())
        async with asyncio.timeout(60):
            await relay.active.wait()
        yield a, b, relay
    finally:
        await asyncio.gather(a.kill(), b.kill(), relay.kill())


async def until(check: Any, within: float = 30) -> Any:
    """Poll ``check`` (async, returns a value or None) until it gives a value."""
    async with asyncio.timeout(within):
        while (found := await check()) is None:  # noqa: ASYNC110 - another process's answer
            await asyncio.sleep(0.05)
        return found


async def test_two_gateways_and_a_relay_deliver_to_clients_on_both(cluster):
    a, b, _ = cluster
    org = user_id()
    admin = bearer(a.token(user_id(), roles=["admin"]))
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as http_b,
    ):
        for http in (http_a, http_b):
            health = (await http.get("/health")).json()
            assert health["node"]["relay"] == {"enabled": False}

            async def redis_ok(http: httpx.AsyncClient = http) -> bool | None:
                body = (await http.get("/health")).json()
                return True if body["checks"].get("redis", {}).get("ok") else None

            await until(redis_ok)

        room_id = await create_room(http_a, a, org)  # type: ignore[arg-type]  # duck: auth()
        recorders = [Recorder(), Recorder()]
        clients = [RoomcastClient(node.url, node.token(org)) for node in (a, b)]
        try:
            for client, recorder in zip(clients, recorders, strict=True):
                client.on("*", recorder)
                await client.connect()
                await client.subscribe(room_id)
            renamed = await http_b.patch(
                f"/api/rooms/{room_id}", json={"name": "through the relay"}, headers=a.auth(org)
            )
            assert renamed.status_code == 200, renamed.text
            for recorder in recorders:
                await recorder.wait_for_seq(2, within=30)
                assert recorder.seqs == [2]
                assert recorder.events[0][1]["changes"]["name"] == "through the relay"

            # Each gateway sees both: its own sockets live, the other's through Redis.
            for http in (http_a, http_b):

                async def both(http: httpx.AsyncClient = http) -> dict[str, Any] | None:
                    data = (await http.get("/api/admin/stats", headers=admin)).json()["data"]
                    cluster = data["cluster"]
                    ids = {n["nodeId"] for n in cluster["nodes"]}
                    if {a.node_id, b.node_id} <= ids and cluster["subscribers"].get(room_id) == 2:
                        return dict(data)
                    return None

                data = await until(both)
                assert data["subscribers"][room_id] == 1  # the answering node's own
                assert data["cluster"]["complete"] is True
                lines = {n["nodeId"]: n for n in data["cluster"]["nodes"]}
                assert lines[a.node_id]["connections"] >= 1
                assert lines[b.node_id]["connections"] >= 1

            await clients[1].close()
            await b.kill()
            killed = time.monotonic()
            still_listed: list[float] = []

            async def b_gone() -> bool | None:
                asked = time.monotonic() - killed
                data = (await http_a.get("/api/admin/stats", headers=admin)).json()["data"]
                if b.node_id in {n["nodeId"] for n in data["cluster"]["nodes"]}:
                    still_listed.append(asked)
                    return None
                return True

            await until(b_gone)
            # B's last entry expires at most STATS_TTL after the kill: no question asked
            # later may still list it, however slow the answers are on a busy machine.
            assert all(asked <= STATS_TTL + 0.05 for asked in still_listed), still_listed
            after = (await http_a.get("/api/admin/stats", headers=admin)).json()["data"]
            assert after["cluster"]["subscribers"].get(room_id) == 1
        finally:
            for client in clients:
                await client.close()


async def test_a_gateway_without_redis_says_so_and_exits_2(own_database_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(DATABASE_URL=own_database_url, ROOMCAST_DATA_DIR=str(tmp_path))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roomcast", "gateway", "--port", str(free_port()),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert out == b""
    assert err.decode().splitlines() == [
        "roomcast: `roomcast gateway` needs REDIS_URL to hear the relays; "
        "a single node runs `roomcast serve` (API, gateway and relay)"
    ]
