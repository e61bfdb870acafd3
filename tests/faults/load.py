"""The load of a fault scenario: rooms, writers at a target rate, and followers.

Followers are of two kinds, both recording into a ``History``:

* ``RoomcastClient`` (the Python client), alternately with ``room:events`` frames
  and without;
* ``RawFollower``: a plain python-socketio client that follows docs/protocol.md's
  client rules by itself, as an application without our client would
  (subscribe with ``lastSeq`` on every connect, drop seqs it has, refill a gap
  with ``room:replay``, retry a refused subscribe after ``retryAfter``).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import socketio

from roomcast.client import RoomcastClient

from ..conftest import RunningServer
from .history import Client, History

__all__ = ["Followers", "RawFollower", "Writers", "scaled"]


def scaled(seconds: float) -> float:
    """A scenario's duration: ``ROOMCAST_FAULT_SCALE`` (default 1) times the CI length;
    ``python -m bench --chaos`` runs the suite with a larger scale."""
    return seconds * float(os.environ.get("ROOMCAST_FAULT_SCALE", "1"))


class RawFollower:
    """One room, followed by the documented rules on a bare python-socketio client."""

    def __init__(self, url: str, token: str, room_id: str, record: Client, history: History):
        self.url, self.token, self.room_id = url, token, room_id
        self.last_seq = 0
        self._record, self._history = record, history
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.sio = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2,
                                        reconnection_delay_max=2)  # fmt: skip
        self.sio.on("connect", self._on_connect)
        self.sio.on("*", self._on_event)
        record.start[room_id] = 0

    async def connect(self) -> None:
        await self.sio.connect(self.url, auth={"token": self.token}, transports=["websocket"])

    async def close(self) -> None:
        self._closing = True
        await self.sio.disconnect()

    async def _on_connect(self) -> None:
        task = asyncio.ensure_future(self._subscribe())  # its ack comes through this loop
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe(self) -> None:
        delay = 0.2
        # Not ``sio.connected``: python-socketio sets it only after the connect handler.
        while not self._closing:
            try:
                ack = await self.sio.call(
                    "room:subscribe", {"roomId": self.room_id, "lastSeq": self.last_seq},
                    timeout=10,
                )  # fmt: skip
            except socketio.exceptions.SocketIOError:
                return  # the next connect subscribes again
            if ack.get("success"):
                return
            retry_after = ack["error"].get("details", {}).get("retryAfter", 0)
            await asyncio.sleep(max(retry_after, random.uniform(delay / 2, delay)))
            delay = min(delay * 2, 5.0)

    async def _on_event(self, event: str, payload: Any = None, *_: Any) -> None:
        items = payload if event == "room:events" and isinstance(payload, list) else [payload]
        async with self._lock:
            for item in items:
                if not isinstance(item, dict) or item.get("roomId") != self.room_id:
                    continue
                seq = item.get("seq")
                if not isinstance(seq, int) or "eventId" not in item or seq <= self.last_seq:
                    continue  # a notice, or a duplicate
                if seq > self.last_seq + 1:
                    await self._refill(seq)
                if seq == self.last_seq + 1:
                    self._deliver(seq)

    async def _refill(self, before: int) -> None:
        """``room:replay`` from the last delivered seq: the page holds every event we
        may see up to ``nextAfter``."""
        while self.last_seq < before - 1:
            try:
                ack = await self.sio.call(
                    "room:replay",
                    {"roomId": self.room_id, "afterSeq": self.last_seq,
                     "limit": min(1000, before - 1 - self.last_seq)},
                    timeout=10,
                )  # fmt: skip
            except socketio.exceptions.SocketIOError:
                return
            if not ack.get("success"):
                return
            for entry in ack["data"]["events"]:
                if entry["payload"]["seq"] > self.last_seq:
                    self._deliver(entry["payload"]["seq"])
            scanned = ack["data"].get("nextAfter", self.last_seq)
            if scanned <= self.last_seq:
                return
            self.last_seq = max(self.last_seq, min(scanned, before - 1))

    def _deliver(self, seq: int) -> None:
        self.last_seq = seq
        self._history.record(self._record, self.room_id, seq)


@dataclass
class Followers:
    """``per_room`` followers on each room: two Python clients for every raw one."""

    server: RunningServer
    org: str
    history: History
    python: list[RoomcastClient] = field(default_factory=list)
    raw: list[RawFollower] = field(default_factory=list)

    async def start(self, rooms: list[str], per_room: int) -> None:
        for room in rooms:
            for i in range(per_room):
                record = self.history.client(f"{room}/{i}", self.org)
                if i % 3 == 2:
                    raw = RawFollower(self.server.url, self.server.token(self.org), room,
                                      record, self.history)  # fmt: skip
                    await raw.connect()
                    self.raw.append(raw)
                    continue
                client = RoomcastClient(
                    self.server.url, self.server.token(self.org),
                    batch=i % 2 == 0, retry_initial=0.2, retry_max=2.0,
                )  # fmt: skip
                client.on("*", self.history.recorder(record))
                await client.connect()
                record.start[room] = 0
                await client.subscribe(room, last_seq=0)
                self.python.append(client)

    def transports(self) -> list[Any]:
        """Every follower's engine.io client (to cut its transport)."""
        return [c.sio.eio for c in self.python] + [r.sio.eio for r in self.raw]

    async def close(self) -> None:
        # A python-socketio client closed in the middle of a reconnect leaks its HTTP
        # session: let every transport that was cut come back first (bounded).
        for _ in range(400):  # python-socketio offers nothing to await here: look, 20 s
            if all(eio.state == "connected" for eio in self.transports()):
                break
            await asyncio.sleep(0.05)
        for client in self.python:
            await client.close()
        for raw in self.raw:
            await raw.close()


@dataclass
class Writers:
    """Renames at ``rate`` per second over ``rooms`` until stopped; counts answers."""

    http: httpx.AsyncClient
    server: RunningServer
    org: str
    rooms: list[str]
    rate: float
    answers: dict[int, int] = field(default_factory=dict)
    unanswered: int = 0

    async def run(self, stop: asyncio.Event, concurrency: int = 16) -> None:
        """Until ``stop`` is set."""
        interval = concurrency / self.rate
        counter = iter(range(10**9))

        async def worker(k: int) -> None:
            next_at = time.monotonic() + interval * k / concurrency
            while not stop.is_set():
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))  # the pace
                next_at += interval
                room = self.rooms[next(counter) % len(self.rooms)]
                try:
                    response = await self.http.patch(
                        f"/api/rooms/{room}", json={"name": f"r{time.monotonic_ns()}"},
                        headers=self.server.auth(self.org),
                    )  # fmt: skip
                except httpx.TransportError:
                    self.unanswered += 1  # the server was killed under this request
                    continue
                self.answers[response.status_code] = self.answers.get(response.status_code, 0) + 1

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
