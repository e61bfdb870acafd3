"""A hand-driven Engine.IO/Socket.IO client over a raw WebSocket, for hostile packets.

python-socketio's client refuses to send what an attacker would (reserved event
names, broken packets); this one sends any text or bytes frame as it is.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from ..conftest import RunningServer

__all__ = ["RawSocket", "health_sockets"]


class RawSocket:
    """One Engine.IO session over WebSocket; ``frames`` holds every text frame received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.sid: str | None = None

    @classmethod
    async def open(cls, server: RunningServer) -> RawSocket:
        url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        ws = await websockets.connect(url, max_size=None, open_timeout=10)
        raw = cls(ws)
        opening = await raw.next()
        assert isinstance(opening, str), opening
        assert opening.startswith("0"), opening
        return raw

    @classmethod
    async def connected(cls, server: RunningServer, token: str) -> RawSocket:
        """Open and send the Socket.IO CONNECT with ``token``; waits for the server's CONNECT."""
        raw = await cls.open(server)
        await raw.send("40" + json.dumps({"token": token}))
        answer = await raw.next_matching(lambda f: f.startswith(("40", "44")))
        assert answer.startswith("40{"), answer
        raw.sid = json.loads(answer[2:])["sid"]
        return raw

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame == "2":  # Engine.IO ping: answer, as every client must
                    await self.ws.send("3")
                    continue
                await self.frames.put(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def send(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def next(self, within: float = 10) -> str | bytes:
        return await asyncio.wait_for(self.frames.get(), within)

    async def next_matching(self, predicate: Any, within: float = 10) -> str:
        """The next text frame ``predicate`` accepts (others are skipped)."""
        async with asyncio.timeout(within):
            while True:
                frame = await self.frames.get()
                if isinstance(frame, str) and predicate(frame):
                    return frame

    async def ack(self, ack_id: int, within: float = 10) -> Any:
        """The data of the ACK packet for ``ack_id`` (its first argument)."""
        prefix = f"43{ack_id}["
        frame = await self.next_matching(lambda f: f.startswith(prefix), within)
        return json.loads(frame[len(prefix) - 1 :])[0]

    async def event(self, name: str, within: float = 10) -> Any:
        """The payload of the next event ``name``."""
        prefix = f'42["{name}"'
        frame = await self.next_matching(lambda f: f.startswith(prefix), within)
        return json.loads(frame[2:])[1]

    async def wait_closed(self, within: float = 10) -> None:
        await asyncio.wait_for(self.closed.wait(), within)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


async def health_sockets(http: httpx.AsyncClient) -> int:
    """How many sockets this node's /health counts."""
    response = await http.get("/health")
    return int(response.json()["node"]["sockets"]["connected"])
