"""Seed 003's room namespace: ``io(url + "/rooms/" + roomId, {auth: {token}})``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from ..conftest import RunningServer
from .support import create_room, rename_many, user_id


class RoomSocket:
    def __init__(self, server: RunningServer, room_id: str) -> None:
        self.server = server
        self.namespace = f"/rooms/{room_id}"
        self.client = socketio.AsyncClient(reconnection=False)
        self.seqs: list[int] = []
        self.errors: list[Any] = []
        self._changed = asyncio.Condition()
        self.client.on("*", self._record, namespace=self.namespace)
        self.client.on("connect_error", self.errors.append, namespace=self.namespace)

    async def _record(self, event: str, payload: Any = None, *_offset: Any) -> None:
        async with self._changed:
            if isinstance(payload, dict) and "seq" in payload and "eventId" in payload:
                self.seqs.append(payload["seq"])
            self._changed.notify_all()

    async def connect(self, **auth: Any) -> None:
        await self.client.connect(
            self.server.url, namespaces=[self.namespace], auth=auth, transports=["websocket"]
        )

    async def wait_for(self, seq: int, within: float = 30) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: seq in self.seqs)


async def test_connecting_to_the_room_namespace_subscribes_with_replay_then_live(server, http):
    org = user_id()
    room_id = await create_room(http, server, org)
    await rename_many(http, server, org, room_id, 3)
    live = RoomSocket(server, room_id)
    await live.connect(token=server.token(org))
    replaying = RoomSocket(server, room_id)
    await replaying.connect(token=server.token(org), lastSeq=0)
    await rename_many(http, server, org, room_id, 2)
    await replaying.wait_for(6)
    await live.wait_for(6)
    assert replaying.seqs == [1, 2, 3, 4, 5, 6]
    assert live.seqs[-2:] == [5, 6]
    assert all(seq > 0 for seq in live.seqs)
    await live.client.disconnect()
    await replaying.client.disconnect()


@pytest.mark.parametrize(
    ("who", "room", "code"),
    [
        ("stranger", "real", "PERMISSION_DENIED"),
        ("org", "missing", "ROOM_NOT_FOUND"),
        ("bad-token", "real", "AUTHENTICATION_FAILED"),
    ],
)
async def test_a_refusal_is_a_connect_error_with_the_code(server, http, who, room, code):
    org = user_id()
    room_id = await create_room(http, server, org)
    target = room_id if room == "real" else "room_doesnotexist"
    token = {"stranger": server.token(user_id()), "org": server.token(org)}.get(who, "not-a-jwt")
    socket = RoomSocket(server, target)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await socket.connect(token=token)
    [error] = socket.errors
    assert error["data"]["code"] == code
    assert error["message"]
    if code == "AUTHENTICATION_FAILED":
        assert error["message"].startswith("Authentication failed: ")
