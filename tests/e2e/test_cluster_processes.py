"""The cluster's process model: two `roomcast gateway` processes and one `roomcast relay`
on one PostgreSQL and a Redis of this module's own (real subprocesses, real SIGKILL).

A gateway SIGKILLed behind a balancer: its clients (the Python client and the
documented socket.io-client example) reconnect to the other and catch up.

An event written through one gateway reaches clients on both, published by the
relay process through Redis (the gateways run no relay, and their position
checks are set far apart so that they cannot be what delivers it). Every
gateway's connection counts are in every gateway's `/api/admin/stats`, and a
SIGKILLed gateway drops out of them within `ROOMCAST_STATS_TTL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from . import test_js_client
from .support import Recorder, bearer, create_room, rename_many, user_id
from .test_js_client import JS_DIR
from .test_relay_processes import RelayProcess
from .test_replay_cap import documented_follow_room

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


class Balancer:
    """A TCP forwarder standing in for the load balancer in front of the gateways:
    each new connection goes to the current ``target`` port; ``target`` moves when
    a gateway dies, as a health-checking balancer's would."""

    def __init__(self, target: int) -> None:
        self.target = target
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


node_exe = test_js_client.node  # the fixture that finds node and installs socket.io-client


async def test_a_gateway_sigkilled_its_clients_reconnect_to_the_other_and_catch_up(
    cluster, node_exe: str, tmp_path: Path
):
    """Both kinds of client behind a balancer, on gateway A: the Python client and
    docs/protocol.md's `followRoom` on the official socket.io-client. A is SIGKILLed
    between two runs of renames (committed through B); the balancer sends the
    reconnects to B, and each client ends with every event once, in order."""
    a, b, _ = cluster
    org = user_id()
    balancer = Balancer(a.port)
    url = await balancer.start()
    module = tmp_path / "follow_room.mjs"
    module.write_text(documented_follow_room())
    (tmp_path / "node_modules").symlink_to(JS_DIR / "node_modules")
    js: asyncio.subprocess.Process | None = None
    client = RoomcastClient(url, a.token(org))
    recorder = Recorder()
    delivered: list[int] = []
    changed = asyncio.Condition()

    async def read_js() -> None:
        assert js is not None
        assert js.stdout is not None
        async for raw in js.stdout:
            line = json.loads(raw)
            if "seq" in line:
                async with changed:
                    delivered.append(line["seq"])
                    changed.notify_all()

    async def js_holds(seq: int) -> None:
        async with asyncio.timeout(60), changed:
            await changed.wait_for(lambda: bool(delivered) and delivered[-1] >= seq)

    async with httpx.AsyncClient(base_url=b.url, timeout=30) as http_b:
        room_id = await create_room(http_b, b, org)  # type: ignore[arg-type]  # duck: auth()
        try:
            client.on("*", recorder)
            await client.connect()
            await client.subscribe(room_id)
            js = await asyncio.create_subprocess_exec(
                node_exe, str(JS_DIR / "doc_follow_room.mjs"), module.as_uri(), url,
                a.token(org), room_id, "1",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert js.stdin is not None
            js.stdin.write(b"go\n")  # its room:replay calls are not held here
            reader = asyncio.create_task(read_js())
            await rename_many(http_b, b, org, room_id, 5, concurrency=1)  # type: ignore[arg-type]
            await recorder.wait_for_seq(6, within=60)
            await js_holds(6)

            await a.kill()
            balancer.target = b.port
            await rename_many(http_b, b, org, room_id, 5, concurrency=1)  # type: ignore[arg-type]
            await recorder.wait_for_seq(11, within=60)
            await js_holds(11)
            assert recorder.seqs == list(range(2, 12))
            assert delivered == list(range(2, 12))
            assert client.reconnects >= 1
            reader.cancel()
        finally:
            await client.close()
            if js is not None and js.returncode is None:
                js.kill()
                await js.wait()
            await balancer.close()
