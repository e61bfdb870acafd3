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
import websockets

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .rawsocket import RawSocket, health_sockets
from .support import create_room, user_id

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def node(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("slow-consumer")),
        rest_rate_limit=0,
        max_socket_buffer_bytes=LIMIT,
    )
    with run_server(settings) as running:
        yield running


async def big_room(http: httpx.AsyncClient, node: RunningServer, org: str, events: int) -> str:
    """A room whose log holds ``events`` updates of ~4 KB each."""
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
        await hog.close()


@pytest.mark.xfail(
    strict=False,
    reason="known defect (issue 15): the overflowed connection is ended and memory stays"
    " bounded, but the SLOW_CONSUMER notice queued before the close is not seen by the"
    " client (the Engine.IO socket is closed with abort=True before the writer sends it)",
)
async def test_the_overflow_notice_is_typed(node):
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        org = user_id()
        room_id = await create_room(http, node, org)
        hog = await never_reading(node, node.token(org))
        await hog.send(f'421["room:subscribe",{{"roomId":"{room_id}"}}]')
        # A replay is paced by the client's reading; live events are not: ~480 KB of
        # them, unread, go past the 256 KiB mark.
        await big_updates(http, node, org, room_id, 120)
        # Read now: what is left in the pipe, then the notice, then the close.
        frames: list[str] = []
        async with asyncio.timeout(60):
            try:
                async for frame in hog:
                    if isinstance(frame, str) and frame.startswith('42["error"'):
                        frames.append(frame)
            except websockets.ConnectionClosed:
                pass
        assert frames, "no error notice before the close"
        notice = json.loads(frames[-1][2:])[1]
        assert notice["code"] == "SLOW_CONSUMER"
        assert notice["details"]["limitBytes"] == LIMIT
