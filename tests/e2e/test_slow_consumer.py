"""A client that never reads is ended at the outbound high-water mark; memory stays bounded.

Before the limit, one WebSocket that sent 50 subscribes from seq 0 and never read
took the server from 103 MB to 665 MB, and kept it after the session ended
(issue 15). Here a node with a small limit (256 KiB) faces the same client.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog.testing
import websockets

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .rawsocket import RawSocket, health_sockets
from .support import create_room, user_id

LIMIT = 256 * 1024
REPLAY_EVENTS = 1500
"""~7.5 MB of room updates: more than loopback's socket buffers hold for a stalled reader."""


@pytest.fixture(scope="module")
def node(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("slow-consumer")),
        rest_rate_limit=0,
        max_socket_buffer_bytes=LIMIT,
        # A client that reads again gets its notice; the tests read right after the end.
        slow_consumer_grace_seconds=60,
    )
    with run_server(settings) as running:
        yield running


async def big_room(http: httpx.AsyncClient, node: RunningServer, org: str, events: int) -> str:
    """A room whose log holds ``events`` updates of ~4 KB each (and its creation)."""
    room_id = await create_room(http, node, org)
    await big_updates(http, node, org, room_id, events)
    return room_id


async def big_updates(
    http: httpx.AsyncClient, node: RunningServer, org: str, room_id: str, events: int
) -> None:
    """``events`` updates of ~4 KB each to the room, eight at a time."""
    headers = node.auth(org)
    todo = iter(range(events))

    async def worker() -> None:
        for i in todo:
            response = await http.patch(
                f"/api/rooms/{room_id}",
                json={"name": f"n{i}", "description": "d" * 4000},
                headers=headers,
            )
            assert response.status_code == 200, response.text

    await asyncio.gather(*(worker() for _ in range(8)))


async def never_reading(node: RunningServer, token: str) -> websockets.ClientConnection:
    """A WebSocket that, once connected, stops reading: its receive buffer is tiny and
    websockets stops reading the transport as soon as one frame waits unread."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = node.url.removeprefix("http://").split(":")
    raw.connect((host, int(port)))
    ws = await websockets.connect(
        f"ws://{host}:{port}/socket.io/?EIO=4&transport=websocket",
        sock=raw,
        max_queue=1,
        max_size=None,
        ping_interval=None,  # its own keepalive would end it, not the server
    )
    await ws.recv()  # Engine.IO OPEN
    await ws.send("40" + json.dumps({"token": token}))
    assert (await ws.recv()).startswith("40{")
    return ws


async def ended(http: httpx.AsyncClient, count: int) -> None:
    """Until /health counts ``count`` sockets again (it is what shows the session's end)."""
    async with asyncio.timeout(60):
        while await health_sockets(http) > count:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def test_a_client_that_never_reads_is_ended_and_others_are_served(node):
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        org = user_id()
        room_id = await big_room(http, node, org, 120)
        before = await health_sockets(http)
        hog = await never_reading(node, node.token(org))
        assert await health_sockets(http) == before + 1
        with structlog.testing.capture_logs() as lines:
            for i in range(40):
                await hog.send(f'42{i}["room:subscribe",{{"roomId":"{room_id}","lastSeq":0}}]')
            await ended(http, before)
            # A reading client on the same room and node is served the whole replay.
            reader = await RawSocket.connected(node, node.token(org))
            await reader.send(f'421["room:subscribe",{{"roomId":"{room_id}","lastSeq":0}}]')
            ack = await reader.ack(1, within=30)
            assert ack["success"] is True
            assert ack["data"]["headSeq"] == 121
            await reader.close()
            # The queued subscribes behind the one that stalled were dropped with the
            # socket; what it is sent last, if it reads again, is why.
            _, notice = await read_to_the_end(hog)
            assert notice is not None
            assert notice["code"] == "SLOW_CONSUMER"
        # The subscribes it had queued found it gone: no handler failed over them.
        failed = [line for line in lines if line.get("log_level") in ("error", "critical")]
        assert failed == []


async def read_to_the_end(ws: websockets.ClientConnection) -> tuple[int, dict | None]:
    """Read everything the server sent until it closes: (the highest room seq seen, the
    last ``error`` event's payload, if any)."""
    seen = 0
    notice = None
    async with asyncio.timeout(120):
        try:
            async for frame in ws:
                if not isinstance(frame, str) or not frame.startswith("42["):
                    continue
                name, payload = json.loads(frame[2:])[:2]
                if name == "error":
                    notice = payload
                elif isinstance(payload, dict) and "seq" in payload:
                    seen = max(seen, payload["seq"])
        except websockets.ConnectionClosed:
            pass
    return seen, notice


async def replayed_seqs(reader: RawSocket, room_id: str, after: int) -> list[int]:
    """Subscribe ``reader`` from ``after``; the seqs of every event its replay sends."""
    await reader.send(f'421["room:subscribe",{{"roomId":"{room_id}","lastSeq":{after}}}]')
    ack = await reader.ack(1, within=30)
    assert ack["success"] is True, ack
    seqs: list[int] = []
    async with asyncio.timeout(60):
        while True:
            frame = await reader.next_matching(lambda f: f.startswith('42["room:'), within=60)
            name, payload = json.loads(frame[2:])[:2]
            if name == "room:subscribed":
                assert payload["replayed"] == len(seqs)
                return seqs
            seqs.append(payload["seq"])


async def test_the_overflow_notice_is_typed_and_the_client_resumes_from_its_position(node):
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        org = user_id()
        # Bigger than what the kernel buffers for a reader that stopped (a few MB
        # on loopback): the replay is cut in the middle.
        room_id = await big_room(http, node, org, REPLAY_EVENTS)
        before = await health_sockets(http)
        hog = await never_reading(node, node.token(org))
        await hog.send(f'421["room:subscribe",{{"roomId":"{room_id}","lastSeq":0}}]')
        await ended(http, before)
        # It reads again (well within the grace): the prefix of the replay that was
        # on its way, then the notice, then the close.
        seen, notice = await read_to_the_end(hog)
        assert notice is not None, "no error notice before the close"
        assert notice["code"] == "SLOW_CONSUMER"
        assert notice["details"]["limitBytes"] == LIMIT
        assert hog.close_code == 1000  # closed, not aborted: the notice was the last word
        assert 0 < seen < REPLAY_EVENTS + 1, seen
        # Reconnected, it resumes from what it has: exactly the rest, in order.
        reader = await RawSocket.connected(node, node.token(org))
        assert await replayed_seqs(reader, room_id, seen) == list(
            range(seen + 1, REPLAY_EVENTS + 2)
        )
        await reader.close()
