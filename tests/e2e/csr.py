"""A python-socketio client doing socket.io-client's half of connection state recovery.

python-socketio's client has none, so this one does what socket.io-client 4.8
does (its ``onconnect``/``emitEvent``/``_sendConnectPacket``): keep the CONNECT
reply's ``pid``, keep the last string argument of every event as the offset,
send ``{pid, offset}`` merged into the auth when connecting again, and call the
connection *recovered* when the reply carries the same ``pid``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import socketio


class _Client(socketio.AsyncClient):  # type: ignore[misc]
    connect_data: dict[str, Any] | None = None

    async def _handle_connect(self, namespace: str | None, data: Any) -> None:
        if (namespace or "/") == "/":
            self.connect_data = data if isinstance(data, dict) else {}
        await super()._handle_connect(namespace, data)


class CsrSocket:
    """One logical socket across reconnects (each one a new transport)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.pid: str | None = None
        self.offset: str | None = None
        self.recovered: list[bool] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.seqs: defaultdict[str, list[int]] = defaultdict(list)
        self.notices: list[tuple[str, Any]] = []
        self.client: _Client | None = None
        self.connect_errors: list[Any] = []
        self._changed = asyncio.Condition()

    async def connect(self, url: str | None = None, **extra: Any) -> _Client:
        client = _Client(reconnection=False)
        client.on("*", self._record)
        client.on("connect_error", self.connect_errors.append)
        auth: dict[str, Any] = {"token": self.token, **extra}
        if self.pid is not None:
            auth = {"pid": self.pid, "offset": self.offset, **auth}
        await client.connect(url or self.url, auth=auth, transports=["websocket"])
        data = client.connect_data or {}
        pid = data.get("pid")
        self.recovered.append(self.pid is not None and pid == self.pid)
        self.pid = pid
        self.client = client
        return client

    async def drop(self) -> None:
        """Lose the transport, as a network failure would: no DISCONNECT packet."""
        assert self.client is not None
        await self.client.eio.disconnect(abort=True)
        self.client = None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.disconnect()

    async def call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        ack: dict[str, Any] = await self.client.call(event, payload, timeout=30)
        return ack

    async def _record(self, event: str, *args: Any) -> None:
        if self.pid is not None and args and isinstance(args[-1], str):
            self.offset = args[-1]
        payload = args[0] if args else None
        async with self._changed:
            if isinstance(payload, dict) and "eventId" in payload and "seq" in payload:
                self.events.append((event, payload))
                self.seqs[payload["roomId"]].append(payload["seq"])
            else:
                self.notices.append((event, payload))
            self._changed.notify_all()

    async def wait_for(self, room_id: str, seq: int, within: float = 30) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: seq in self.seqs[room_id])

    async def wait_notice(self, event: str, count: int = 1, within: float = 30) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(
                lambda: sum(1 for e, _ in self.notices if e == event) >= count
            )
