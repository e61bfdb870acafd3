"""Connection state recovery from the log (docs/decisions/0009-connection-state-recovery.md).

A reconnecting socket that sends back its ``pid`` and last offset gets its
subscriptions and every event it missed, once each and in seq order, without
``lastSeq``; python-socketio with socket.io-client's recovery rules (csr.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket as socketlib
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, redis_nodes
from . import test_js_client
from .csr import CsrSocket
from .support import create_room, join, rename_many, user_id
from .test_js_client import JS_DIR

node = test_js_client.node  # the fixture that finds node and installs socket.io-client


async def subscribe(socket: CsrSocket, room_id: str, **extra: Any) -> dict[str, Any]:
    ack = await socket.call("room:subscribe", {"roomId": room_id, **extra})
    assert ack["success"] is True, ack
    data: dict[str, Any] = ack["data"]
    return data


async def head(http: httpx.AsyncClient, server: RunningServer, org: str, room_id: str) -> int:
    response = await http.get(f"/api/rooms/{room_id}", headers=server.auth(org))
    return int(response.json()["data"]["version"])


def assert_once_in_order(socket: CsrSocket, room_id: str, first: int, last: int) -> None:
    assert socket.seqs[room_id] == list(range(first, last + 1))


@pytest.mark.parametrize("rooms", [1, 3])
async def test_a_dropped_transport_recovers_every_room_without_last_seq(
    server: RunningServer, http: httpx.AsyncClient, rooms: int
):
    org = user_id()
    room_ids = [await create_room(http, server, org) for _ in range(rooms)]
    socket = CsrSocket(server.url, server.token(org))
    await socket.connect()
    for room_id in room_ids:
        await subscribe(socket, room_id, lastSeq=0)
    for room_id in room_ids:
        await rename_many(http, server, org, room_id, 3)
        await socket.wait_for(room_id, 4)

    await socket.drop()
    for room_id in room_ids:  # missed while away: 5..10 in each room
        await rename_many(http, server, org, room_id, 6)

    await socket.connect()
    assert socket.recovered[-1] is True
    for room_id in room_ids:
        await rename_many(http, server, org, room_id, 2)  # and live again: 11, 12
    for room_id in room_ids:
        await socket.wait_for(room_id, 12)
        assert_once_in_order(socket, room_id, 1, 12)
    replayed = [p["seq"] for _, p in socket.events if p.get("replayed")]
    # Replayed: the subscribe's 1, then exactly what was missed (5..10), nothing more.
    assert sorted(replayed) == sorted([s for _ in room_ids for s in (1, *range(5, 11))])
    await socket.close()


async def test_recovery_then_a_seed_style_subscribe_on_connect_sends_nothing_twice(
    server: RunningServer, http: httpx.AsyncClient
):
    org = user_id()
    room_id = await create_room(http, server, org)
    socket = CsrSocket(server.url, server.token(org))
    await socket.connect()
    await subscribe(socket, room_id)  # seed 003: no lastSeq
    await rename_many(http, server, org, room_id, 2)
    await socket.wait_for(room_id, 3)
    await socket.drop()
    await rename_many(http, server, org, room_id, 4)  # 4..7 while away
    await socket.connect()
    data = await subscribe(socket, room_id)  # what seed 003 sends on every `connect`
    assert data["replaying"] == 0
    await rename_many(http, server, org, room_id, 1)
    await socket.wait_for(room_id, 8)
    assert socket.recovered[-1] is True
    assert_once_in_order(socket, room_id, 2, 8)
    await socket.close()


async def test_a_client_that_also_sends_last_seq_is_not_hurt(
    server: RunningServer, http: httpx.AsyncClient
):
    org = user_id()
    room_id = await create_room(http, server, org)
    socket = CsrSocket(server.url, server.token(org))
    await socket.connect()
    await subscribe(socket, room_id, lastSeq=0)
    await rename_many(http, server, org, room_id, 2)
    await socket.wait_for(room_id, 3)
    await socket.drop()
    await rename_many(http, server, org, room_id, 3)  # 4..6
    await socket.connect()
    await subscribe(socket, room_id, lastSeq=3)  # the client's own bookkeeping
    await socket.wait_notice("room:subscribed", count=3)
    await rename_many(http, server, org, room_id, 1)
    await socket.wait_for(room_id, 7)
    # The recovery and the subscribe both replayed 4..6: the client drops the
    # second copies by seq, and has every event.
    distinct = sorted(set(socket.seqs[room_id]))
    assert distinct == list(range(1, 8))
    await socket.close()


async def test_an_unknown_or_foreign_pid_is_not_recovered(
    server: RunningServer, http: httpx.AsyncClient
):
    org, other = user_id(), user_id()
    room_id = await create_room(http, server, org)
    socket = CsrSocket(server.url, server.token(org))
    await socket.connect()
    await subscribe(socket, room_id)
    await socket.drop()
    thief = CsrSocket(server.url, server.token(other))
    thief.pid, thief.offset = socket.pid, socket.offset
    await thief.connect()
    assert thief.recovered == [False]
    await rename_many(http, server, org, room_id, 1)
    stranger = CsrSocket(server.url, server.token(org))
    stranger.pid = "no-such-pid"
    await stranger.connect()
    assert stranger.recovered == [False]
    assert thief.seqs[room_id] == []
    assert stranger.seqs[room_id] == []
    await thief.close()
    await stranger.close()


async def test_a_participant_removed_while_away_gets_nothing_after_the_removal(
    server: RunningServer, http: httpx.AsyncClient
):
    org, guest = user_id(), user_id()
    room_id = await create_room(http, server, org)
    participant = await join(http, server, room_id, guest)
    socket = CsrSocket(server.url, server.token(guest))
    await socket.connect()
    await subscribe(socket, room_id)
    await rename_many(http, server, org, room_id, 1)
    await socket.wait_for(room_id, 3)
    await socket.drop()
    removed = await http.delete(
        f"/api/rooms/{room_id}/participants/{participant}", headers=server.auth(org)
    )
    assert removed.status_code in (200, 204), removed.text
    await rename_many(http, server, org, room_id, 2)
    await socket.connect()
    await socket.wait_notice("error")
    [(_, error)] = [n for n in socket.notices if n[0] == "error"]
    assert error["code"] == "PERMISSION_DENIED"
    assert error["details"]["roomId"] == room_id
    assert socket.seqs[room_id] == [3]
    await socket.close()


async def test_an_expired_token_is_refused_as_on_connect(
    server: RunningServer, http: httpx.AsyncClient
):
    org = user_id()
    room_id = await create_room(http, server, org)
    socket = CsrSocket(server.url, server.token(org))
    await socket.connect()
    await subscribe(socket, room_id)
    await socket.drop()
    socket.token = server.token(org, ttl=-60)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await socket.connect()
    [error] = socket.connect_errors
    assert error["message"].startswith("Authentication failed: ")
    assert error["data"]["code"] == "AUTHENTICATION_FAILED"


async def test_recovery_on_another_node(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
):
    nodes = redis_nodes(own_database_url, redis_url, tmp_path_factory, {}, {"relay": False})
    with nodes as (a, b):
        org = user_id()
        async with httpx.AsyncClient(base_url=a.url, timeout=30) as http:
            room_ids = [await create_room(http, a, org) for _ in range(3)]
            socket = CsrSocket(a.url, a.token(org))
            await socket.connect()
            for room_id in room_ids:
                await subscribe(socket, room_id, lastSeq=0)
            for room_id in room_ids:
                await rename_many(http, a, org, room_id, 2)
                await socket.wait_for(room_id, 3)
            await socket.drop()
            for room_id in room_ids:
                await rename_many(http, a, org, room_id, 3)  # 4..6 while away
            await socket.connect(b.url)  # the load balancer sent it elsewhere
            assert socket.recovered[-1] is True
            for room_id in room_ids:
                await rename_many(http, a, org, room_id, 1)
            for room_id in room_ids:
                await socket.wait_for(room_id, 7)
                assert_once_in_order(socket, room_id, 1, 7)
            await socket.close()


# ---------------------------------------------------------------- seed 003, SIGKILL


class ServerProcess:
    """``roomcast serve`` as a subprocess on a fixed port (SIGKILLed, started again)."""

    def __init__(self, database_url: str, port: int, data_dir: Path) -> None:
        self.port = port
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "ROOMCAST_JWT_SECRET": JWT_SECRET,
            "ROOMCAST_HOST": "127.0.0.1",
            "ROOMCAST_PORT": str(port),
            "ROOMCAST_DATA_DIR": str(data_dir),
            "ROOMCAST_RELAY_POLL": "0.05",
            "ROOMCAST_LOG_FORMAT": "json",
            "ROOMCAST_LOG_LEVEL": "warning",
        }
        self.process: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{port}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "roomcast", "serve",
            env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
            async with asyncio.timeout(60):
                while True:  # until it answers: nothing else says it is up
                    try:
                        if (await http.get("/health")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()


def free_port() -> int:
    with socketlib.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_seeds_own_flow_loses_nothing_across_a_server_sigkill(
    own_database_url: str, node: str, tmp_path: Path
):
    server = ServerProcess(own_database_url, free_port(), tmp_path)
    minting = RunningServer(
        url=server.url, settings=Settings(database_url=own_database_url, jwt_secret=JWT_SECRET)
    )
    org = user_id()
    guests = [user_id() for _ in range(12)]
    await server.start()
    client: asyncio.subprocess.Process | None = None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            room_id = await create_room(http, minting, org)
            client = await asyncio.create_subprocess_exec(
                node, str(JS_DIR / "seed_flow.mjs"),
                env={**os.environ, "URL": f"ws://127.0.0.1:{server.port}",
                     "TOKEN": minting.token(org), "ROOM_ID": room_id},
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, cwd=str(JS_DIR),
            )  # fmt: skip
            lines = SeedLines(client)
            await lines.until(lambda: lines.connects >= 1)
            await lines.until_text("Subscribed to room")

            async def commands(users: list[str], draw: int) -> None:
                for who in users:
                    await join(http, minting, room_id, who)
                    body = {"event": "lottery:draw_started",
                            "data": {"drawNumber": draw, "totalPrizes": 10,
                                     "estimatedDuration": 300}}  # fmt: skip
                    published = await http.post(
                        f"/api/rooms/{room_id}/events",
                        json=body,
                        headers=minting.app_auth("lottery"),
                    )
                    assert published.status_code == 201, published.text

            await commands(guests[:4], 1)
            # Committed right before the kill: some not yet relayed when it dies.
            await commands(guests[4:8], 2)
            await server.kill()
            await server.start()  # the same port
            await commands(guests[8:], 3)

            log = await http.get(
                f"/api/rooms/{room_id}/events?after=0&limit=1000", headers=minting.auth(org)
            )
            handled_kinds = {"participant:joined", "winner:selected", "lottery:draw_started"}
            expected = {
                e["payload"]["eventId"]
                for e in log.json()["data"]["events"]
                if e["event"] in handled_kinds
            }
            assert len(expected) == 24
            await lines.until(lambda: expected <= lines.handled)
            assert lines.handled == expected
            assert lines.recovered_after_first  # socket.recovered after the restart
    finally:
        if client is not None and client.returncode is None:
            client.kill()
            await client.wait()
        await server.kill()


class SeedLines:
    """The JSON lines seed_flow.mjs prints, read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.handled: set[str] = set()
        self.connects = 0
        self.recovered_after_first = False
        self.text: list[str] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read(process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode().strip()
            async with self._changed:
                if line.startswith("{"):
                    item = json.loads(line)
                    if "handled" in item:
                        self.handled.add(item["handled"])
                    if "connect" in item:
                        self.connects = item["connect"]
                        if item["connect"] > 1 and item["recovered"]:
                            self.recovered_after_first = True
                else:
                    self.text.append(line)
                self._changed.notify_all()

    async def until(self, condition: Any, within: float = 60) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(condition)

    async def until_text(self, text: str, within: float = 60) -> None:
        await self.until(lambda: any(text in t for t in self.text), within)


# ---------------------------------------------------------------- socket.io-client


async def test_the_official_client_recovers_three_rooms_after_a_transport_drop(
    server: RunningServer, http: httpx.AsyncClient, node: str
):
    org = user_id()
    room_ids = [await create_room(http, server, org) for _ in range(3)]
    client = await asyncio.create_subprocess_exec(
        node, str(JS_DIR / "recover.mjs"),
        env={**os.environ, "URL": server.url, "TOKEN": server.token(org),
             "ROOMS": ",".join(room_ids)},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(JS_DIR),
    )  # fmt: skip
    lines = JsLines(client)
    try:
        await lines.until(lambda: len(lines.subscribed) == 3)
        for room_id in room_ids:
            await rename_many(http, server, org, room_id, 2)  # 2, 3
        await lines.until(lambda: all(3 in lines.seqs.get(r, []) for r in room_ids))
        assert client.stdin is not None
        client.stdin.write(b"drop\n")
        await client.stdin.drain()
        for room_id in room_ids:  # while it reconnects, and after: 4..8
            await rename_many(http, server, org, room_id, 5, concurrency=1)
        await lines.until(lambda: all(8 in lines.seqs.get(r, []) for r in room_ids))
        assert lines.connects == [False, True]  # socket.recovered after the drop
        for room_id in room_ids:
            seqs = lines.seqs[room_id]
            assert sorted(seqs) == list(range(min(seqs), 9))  # once each, none missing
            assert seqs == sorted(seqs)  # in order
            assert min(seqs) <= 2
    finally:
        if client.returncode is None:
            client.kill()
            await client.wait()


class JsLines:
    """The JSON lines recover.mjs prints, read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.seqs: dict[str, list[int]] = {}
        self.subscribed: list[str] = []
        self.connects: list[bool] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read(process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            item = json.loads(raw)
            async with self._changed:
                if "seq" in item:
                    self.seqs.setdefault(item["room"], []).append(item["seq"])
                elif "subscribed" in item:
                    self.subscribed.append(item["subscribed"])
                elif "connect" in item:
                    self.connects.append(bool(item["recovered"]))
                self._changed.notify_all()

    async def until(self, condition: Any, within: float = 60) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(condition)
