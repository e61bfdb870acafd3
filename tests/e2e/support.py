"""Helpers the end-to-end modules share: users, tokens, rooms, members."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import socketio

from roomcast.tokens import mint

from ..conftest import JWT_SECRET, RunningServer

__all__ = [
    "Recorder",
    "bearer",
    "create_room",
    "join",
    "loud_records",
    "rename_many",
    "token",
    "user_id",
]


def user_id() -> str:
    """A user id no other test uses (the session's server and database are shared)."""
    return f"usr_{uuid.uuid4().hex[:10]}"


def token(server: RunningServer, sub: str, **extra: Any) -> str:
    """A token for ``sub`` with extra claims (``roles``, ``app``, …)."""
    return mint(
        secret=JWT_SECRET,
        sub=sub,
        name=None,
        issuer=server.settings.jwt_issuer,
        audience=server.settings.jwt_audience,
        ttl_seconds=3600,
        extra=extra,
    )


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def create_room(
    http: httpx.AsyncClient, server: RunningServer, org: str, name: str = "Live"
) -> str:
    """A new room organized by ``org``; its id."""
    response = await http.post("/api/rooms", json={"name": name}, headers=server.auth(org))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["room"]["id"])


async def join(http: httpx.AsyncClient, server: RunningServer, room_id: str, who: str) -> str:
    """``who`` joins ``room_id``; their participant id."""
    response = await http.post(f"/api/rooms/{room_id}/participants", headers=server.auth(who))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["participant"]["id"])


class Recorder:
    """Collects a client's room events; lets a test await "seq N has arrived"."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: str, payload: dict[str, Any]) -> None:
        if "eventId" not in payload:
            return  # room:subscribed and other notices
        async with self._changed:
            self.events.append((event, payload))
            self._changed.notify_all()

    @property
    def seqs(self) -> list[int]:
        return [p["seq"] for _, p in self.events if "seq" in p]

    async def wait_for_seq(self, seq: int, within: float = 60) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: bool(self.seqs) and self.seqs[-1] >= seq)


async def rename_many(
    http: httpx.AsyncClient,
    server: RunningServer,
    org: str,
    room_id: str,
    count: int,
    concurrency: int = 8,
) -> None:
    headers = server.auth(org)
    queue = iter(range(count))
    # Names no earlier call used: a rename to the room's current name appends nothing,
    # and concurrent renames commit in any order.
    batch = uuid.uuid4().hex[:8]

    async def worker() -> None:
        for i in queue:
            response = await http.patch(
                f"/api/rooms/{room_id}", json={"name": f"name {batch}-{i}"}, headers=headers
            )
            assert response.status_code == 200, response.text

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class Wire:
    """Every message a raw Socket.IO client receives, in order; waits on a room's seq."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Any]] = []
        self._changed = asyncio.Condition()

    async def record(self, event: str, *args: Any) -> None:
        async with self._changed:
            self.messages.append((event, args[0] if args else None))
            self._changed.notify_all()

    @property
    def frames(self) -> list[list[dict[str, Any]]]:
        return [data for event, data in self.messages if event == "room:events"]

    @property
    def seqs(self) -> list[int]:
        """Seqs in arrival order, from frames and from single events alike."""
        out: list[int] = []
        for event, data in self.messages:
            if event == "room:events":
                out.extend(p["seq"] for p in data)
            elif isinstance(data, dict) and "eventId" in data:
                out.append(data["seq"])
        return out

    @property
    def delivered(self) -> list[int]:
        """``seqs`` after the client rule: a seq at or below the last one is a duplicate
        (a replay can read an event the relay has not published yet)."""
        out: list[int] = []
        for seq in self.seqs:
            if not out or seq > out[-1]:
                out.append(seq)
        return out

    async def wait_for_seq(self, seq: int, within: float = 60) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: bool(self.seqs) and self.seqs[-1] >= seq)


async def subscribe(client: socketio.AsyncClient, payload: dict[str, Any]) -> dict[str, Any]:
    ack = await client.call("room:subscribe", payload, timeout=30)
    assert ack["success"] is True, ack
    data: dict[str, Any] = ack["data"]
    return data


CLIENT_LOGGERS = ("engineio.client", "socketio.client")
"""The tests' own Socket.IO clients log here (a client of an earlier test may still be
winding down in the same loop): not the server under test."""


def loud_records(records: list[logging.LogRecord]) -> list[str]:
    """The server's log records at error level or with a traceback."""
    return [
        r.getMessage()
        for r in records
        if (r.levelno >= logging.ERROR or r.exc_info) and not r.name.startswith(CLIENT_LOGGERS)
    ]
