"""Notifications end to end: a winner is told in their own stream, live and on replay."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import socketio

from ..conftest import RunningServer
from .support import create_room, join, user_id


class Inbox:
    """A user's socket, collecting notification events; lets a test await seq N."""

    def __init__(self, server: RunningServer, who: str) -> None:
        self.server = server
        self.who = who
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Condition()
        self.sio.on("*", self._record)

    async def _record(self, event: str, payload: Any = None, *_offset: Any) -> None:
        if event.startswith("notification:"):
            async with self._changed:
                self.events.append((event, payload))
                self._changed.notify_all()

    async def connect(self) -> Inbox:
        await self.sio.connect(
            self.server.url,
            auth={"token": self.server.token(self.who)},
            transports=["websocket"],
        )
        return self

    async def wait_for_seq(self, seq: int) -> None:
        async with asyncio.timeout(30), self._changed:
            await self._changed.wait_for(lambda: any(p["seq"] >= seq for _, p in self.events))

    async def call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call(event, payload, timeout=30)
        return ack


async def active_room_with(http: httpx.AsyncClient, server: RunningServer, org: str, *users: str):
    room_id = await create_room(http, server, org)
    for who in users:
        await join(http, server, room_id, who)
    prize = await http.post(
        f"/api/rooms/{room_id}/prizes",
        json={"name": "iPhone", "quantity": 5},
        headers=server.auth(org),
    )
    assert prize.status_code == 201, prize.text
    status = await http.post(
        f"/api/rooms/{room_id}/status", json={"status": "active"}, headers=server.auth(org)
    )
    assert status.status_code == 200, status.text
    return room_id, prize.json()["data"]["prize"]["id"]


async def draw(http: httpx.AsyncClient, server: RunningServer, org: str, room_id: str, prize: str):
    response = await http.post(
        f"/api/rooms/{room_id}/draws", json={"prizeId": prize}, headers=server.auth(org)
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]["winner"]


async def test_the_winner_is_notified_live_reads_it_and_replays_what_was_missed(
    server: RunningServer, http: httpx.AsyncClient
):
    org, bob = user_id(), user_id()
    room_id, prize = await active_room_with(http, server, org, bob)
    inbox = await Inbox(server, bob).connect()
    try:
        winner = await draw(http, server, org, room_id, prize)
        assert winner["participant"]["user"]["id"] == bob
        await inbox.wait_for_seq(1)
        [(name, received)] = inbox.events
        assert name == "notification:received"
        assert received["type"] == "winner_selected"
        assert received["title"] == "Congratulations!"
        assert received["message"] == "You won iPhone"
        assert received["data"] == {"roomId": room_id, "winnerId": winner["id"], "prizeId": prize}
        assert received["read"] is False
        assert received["userId"] == bob
        assert received["event"] == "notification:received"

        listed = await http.get("/api/notifications", headers=server.auth(bob))
        body = listed.json()["data"]
        assert body["unreadCount"] == 1
        assert [n["id"] for n in body["notifications"]] == [received["id"]]
        assert body["headSeq"] == 1

        ack = await inbox.call("notification:mark_read", {"notificationId": received["id"]})
        assert ack == {
            "success": True,
            "data": {"notificationId": received["id"], "read": True, "headSeq": 2},
        }
        await inbox.wait_for_seq(2)
        assert inbox.events[-1][0] == "notification:read"
        again = await inbox.call("notification:mark_read", {"notificationId": received["id"]})
        assert again["success"] is True  # already read: nothing changes, still a success

        unknown = await inbox.call("notification:mark_read", {"notificationId": "notif_nope"})
        assert unknown["error"]["code"] == "NOTIFICATION_NOT_FOUND"
        malformed = await inbox.call("notification:mark_read", {"id": 5})
        assert malformed["error"]["code"] == "INVALID_PAYLOAD"
    finally:
        await inbox.sio.disconnect()

    # This socket is offline for another win, which bob's phone (another socket of
    # his) sees live; back online, the first socket replays from the last seq it saw.
    removed = await http.delete(
        f"/api/rooms/{room_id}/winners/{winner['id']}", headers=server.auth(org)
    )
    assert removed.status_code == 200, removed.text  # so bob may win again
    phone = await Inbox(server, bob).connect()
    try:
        second = await draw(http, server, org, room_id, prize)
        assert second["participant"]["user"]["id"] == bob  # bob is the only participant
        await phone.wait_for_seq(3)
    finally:
        await phone.sio.disconnect()
    inbox = await Inbox(server, bob).connect()
    try:
        replay = await inbox.call("notification:replay", {"afterSeq": 2})
        data = replay["data"]
        assert [e["payload"]["seq"] for e in data["events"]] == [3]
        assert data["events"][0]["event"] == "notification:received"
        assert data["events"][0]["payload"]["data"]["winnerId"] == second["id"]
        assert (data["headSeq"], data["nextAfter"]) == (3, 3)
    finally:
        await inbox.sio.disconnect()

    by_rest = await http.post(
        f"/api/notifications/{data['events'][0]['payload']['id']}/read", headers=server.auth(bob)
    )
    assert by_rest.json()["data"] == {
        "notificationId": data["events"][0]["payload"]["id"],
        "read": True,
        "headSeq": 4,
    }


async def test_nobody_else_reads_or_marks_a_users_notifications(
    server: RunningServer, http: httpx.AsyncClient
):
    org, bob, eve = user_id(), user_id(), user_id()
    room_id, prize = await active_room_with(http, server, org, bob)
    inbox = await Inbox(server, bob).connect()
    try:
        await draw(http, server, org, room_id, prize)
        await inbox.wait_for_seq(1)
    finally:
        await inbox.sio.disconnect()
    mine = (await http.get("/api/notifications", headers=server.auth(bob))).json()["data"]
    theirs = (await http.get("/api/notifications", headers=server.auth(eve))).json()["data"]
    assert theirs == {"notifications": [], "unreadCount": 0, "headSeq": 0}
    stolen = await http.post(
        f"/api/notifications/{mine['notifications'][0]['id']}/read", headers=server.auth(eve)
    )
    assert (stolen.status_code, stolen.json()["error"]["code"]) == (404, "NOTIFICATION_NOT_FOUND")
    # An inbox is not a room: room routes never reach it.
    sneaky = await http.get(f"/api/rooms/user:{bob}/events", headers=server.auth(bob))
    assert (sneaky.status_code, sneaky.json()["error"]["code"]) == (404, "ROOM_NOT_FOUND")


async def test_an_inbox_cannot_be_subscribed_or_left_as_a_room(server: RunningServer):
    bob = user_id()
    inbox = await Inbox(server, bob).connect()
    try:
        for event in ("room:subscribe", "room:unsubscribe", "room:replay"):
            ack = await inbox.call(event, {"roomId": f"user:{bob}", "afterSeq": 0})
            assert ack["error"]["code"] == "INVALID_PAYLOAD", (event, ack)
    finally:
        await inbox.sio.disconnect()


async def test_the_python_client_follows_notifications_across_a_reconnect(
    server: RunningServer, http: httpx.AsyncClient
):
    from roomcast.client import RoomcastClient

    org, bob = user_id(), user_id()
    room_id, prize = await active_room_with(http, server, org, bob)
    got: list[tuple[str, int]] = []
    arrived = asyncio.Condition()

    async def record(event: str, payload: dict[str, Any], *_offset: Any) -> None:
        async with arrived:
            got.append((event, payload["seq"]))
            arrived.notify_all()

    async def until(seq: int) -> None:
        async with asyncio.timeout(30), arrived:
            await arrived.wait_for(lambda: bool(got) and got[-1][1] >= seq)

    client = RoomcastClient(server.url, server.token(bob))
    client.on("notification:received", record)
    client.on("notification:read", record)
    await client.connect()
    try:
        await client.follow_notifications(last_seq=0)
        winner = await draw(http, server, org, room_id, prize)
        await until(1)
        # Cut the transport; while it is down, bob reads the notification elsewhere
        # (REST) and wins again; the client catches up after its own reconnect.
        await client.sio.eio.ws.close()
        listed = (await http.get("/api/notifications", headers=server.auth(bob))).json()
        notification_id = listed["data"]["notifications"][0]["id"]
        await http.post(f"/api/notifications/{notification_id}/read", headers=server.auth(bob))
        await http.delete(f"/api/rooms/{room_id}/winners/{winner['id']}", headers=server.auth(org))
        await draw(http, server, org, room_id, prize)
        await until(3)
    finally:
        await client.close()
    assert got == [
        ("notification:received", 1),
        ("notification:read", 2),
        ("notification:received", 3),
    ]
    assert client.reconnects >= 1
