"""Long-polling sessions that do not poll are ended; a stalled one still learns why.

Over HTTP long-polling only a GET takes output off a session's queue. Before,
a session that never sent a GET but answered pings with POSTs grew by every
broadcast and was never ended (issue 15). Driven here with hand-made polling
requests, as such a client would send them. Covers engine.io's private
``_get_socket`` (overridden in gateway/server.py ``_EngineServer``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .rawsocket import RawSocket, health_sockets
from .support import create_room, user_id
from .test_slow_consumer import big_updates, ended, replayed_seqs

LIMIT = 256 * 1024
POLL_TIMEOUT = 1.5
TEXT = {"Content-Type": "text/plain;charset=UTF-8"}


def _node(database_url: str, data_dir: Path, **extra: object) -> run_server:
    return run_server(
        Settings(
            database_url=database_url,
            jwt_secret=JWT_SECRET,
            data_dir=data_dir,
            rest_rate_limit=0,
            max_socket_buffer_bytes=LIMIT,
            **extra,  # type: ignore[arg-type]
        )
    )


@pytest.fixture(scope="module")
def stalled_node(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A node where a polling client may stall long enough to overflow, and read again."""
    data_dir = Path(tmp_path_factory.mktemp("slow-polling"))
    with _node(
        database_url, data_dir, slow_consumer_grace_seconds=60, socket_poll_timeout_seconds=60
    ) as running:
        yield running


@pytest.fixture(scope="module")
def idle_node(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A node that pings every second and ends a session without a GET for 1.5 s."""
    data_dir = Path(tmp_path_factory.mktemp("idle-polling"))
    with _node(
        database_url,
        data_dir,
        socket_poll_timeout_seconds=POLL_TIMEOUT,
        ping_interval_seconds=1,
        ping_timeout_seconds=10,
    ) as running:
        yield running


class Polling:
    """One Engine.IO session over long-polling, driven request by request."""

    def __init__(self, http: httpx.AsyncClient, sid: str) -> None:
        self.http = http
        self.url = f"/socket.io/?EIO=4&transport=polling&sid={sid}"

    @classmethod
    async def connected(cls, http: httpx.AsyncClient, node: RunningServer, token: str) -> Polling:
        opened = await http.get("/socket.io/?EIO=4&transport=polling")
        assert opened.status_code == 200, opened.text
        session = cls(http, json.loads(opened.text[1:])["sid"])
        assert (await session.post("40" + json.dumps({"token": token}))).status_code == 200
        reply = await session.get()
        assert reply.text.startswith("40{"), reply.text
        return session

    async def post(self, *packets: str) -> httpx.Response:
        return await self.http.post(self.url, content="\x1e".join(packets), headers=TEXT)

    async def get(self) -> httpx.Response:
        return await self.http.get(self.url)

    async def packets(self) -> list[str]:
        """One GET's packets (it waits until the server has something to send)."""
        response = await self.get()
        assert response.status_code == 200, response.text
        return response.text.split("\x1e")


async def test_a_stalled_polling_session_is_ended_and_its_next_get_says_why(stalled_node):
    node = stalled_node
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        org = user_id()
        room_id = await create_room(http, node, org)
        before = await health_sockets(http)
        session = await Polling.connected(http, node, node.token(org))
        await session.post(f'421["room:subscribe",{{"roomId":"{room_id}"}}]')
        async with asyncio.timeout(20):
            while not any(p.startswith('42["room:subscribed"') for p in await session.packets()):
                pass
        # It stops polling: ~480 KB of live events, nobody taking them, pass 256 KiB.
        await big_updates(http, node, org, room_id, 120)
        await ended(http, before)
        # Its POSTs reach nobody now; they do not lose it the notice either.
        assert (await session.post("3")).status_code == 200
        farewell = await session.packets()
        assert farewell[-1] == "1", farewell  # Engine.IO CLOSE, after the notice
        errors = [json.loads(p[2:])[1] for p in farewell if p.startswith('42["error"')]
        assert [e["code"] for e in errors] == ["SLOW_CONSUMER"]
        assert errors[0]["details"]["limitBytes"] == LIMIT
        assert len(farewell) == 2, farewell  # what waited unsent was dropped
        gone = await session.get()
        assert gone.status_code == 400
        # It reconnects and resumes from its position (the head when it subscribed).
        reader = await RawSocket.connected(node, node.token(org))
        assert await replayed_seqs(reader, room_id, 1) == list(range(2, 122))
        await reader.close()


async def test_a_session_that_answers_pings_but_never_gets_is_ended(idle_node):
    node = idle_node
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        before = await health_sockets(http)
        session = await Polling.connected(http, node, node.token(user_id()))
        assert await health_sockets(http) == before + 1

        async def pong_blindly() -> None:
            # The client's own cadence, not a wait for the server: it answers pings
            # it never read, to stay clear of the ping timeout.
            while (await session.post("3")).status_code == 200:  # noqa: ASYNC110
                await asyncio.sleep(0.2)

        ponging = asyncio.create_task(pong_blindly())
        try:
            await ended(http, before)
            async with asyncio.timeout(10):
                await ponging  # its POSTs are refused from the end on
        finally:
            ponging.cancel()
        assert (await session.post("3")).status_code == 400
        assert (await session.get()).status_code == 400


async def test_a_session_that_keeps_polling_outlives_the_timeout(idle_node):
    node = idle_node
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        before = await health_sockets(http)
        session = await Polling.connected(http, node, node.token(user_id()))
        pings = 0
        async with asyncio.timeout(30):
            # One ping a second: four of them span more than twice the poll timeout.
            while pings < 4:
                packets = await session.packets()
                if "2" in packets:
                    pings += 1
                    assert (await session.post("3")).status_code == 200
        assert await health_sockets(http) == before + 1
        await session.post('421["presence:get_online",{"roomId":"room_nope"}]')
        async with asyncio.timeout(10):
            while not any(p.startswith("431[") for p in await session.packets()):
                pass
        await session.post("1")  # Engine.IO CLOSE from the client
