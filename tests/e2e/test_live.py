"""Presence, typing, per-connection limits and token expiry, end to end.

Real uvicorn, real PostgreSQL, real python-socketio clients. "Nothing else
arrived" is never checked by waiting: a later event that is certainly sent
after the one that must not exist is awaited instead (one socket's events
arrive in the order they were sent).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import socketio

from roomcast.client import RoomcastClient
from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .support import create_room, join, user_id


class Peer:
    """A python-socketio client that queues every event it receives, by name."""

    def __init__(self, server: RunningServer, sub: str, *, ttl: int = 3600) -> None:
        self.server = server
        self.sub = sub
        self.ttl = ttl
        self.sio = socketio.AsyncClient(reconnection=False)
        self.inbox: dict[str, asyncio.Queue[Any]] = {}
        self.disconnected: asyncio.Queue[Any] = asyncio.Queue()
        self.sio.on("*", self._record)
        self.sio.on("disconnect", self.disconnected.put)

    async def _record(self, event: str, *args: Any) -> None:
        self.queue(event).put_nowait(args[0] if args else None)

    def queue(self, event: str) -> asyncio.Queue[Any]:
        return self.inbox.setdefault(event, asyncio.Queue())

    async def connect(self) -> Peer:
        await self.sio.connect(
            self.server.url,
            auth={"token": self.server.token(self.sub, self.sub.title(), ttl=self.ttl)},
            transports=["websocket"],
        )
        return self

    async def call(self, event: str, payload: Any) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call(event, payload, timeout=20)
        return ack

    async def ok(self, event: str, payload: Any) -> dict[str, Any]:
        ack = await self.call(event, payload)
        assert ack["success"] is True, ack
        data: dict[str, Any] = ack["data"]
        return data

    async def next(self, event: str, within: float = 20) -> Any:
        return await asyncio.wait_for(self.queue(event).get(), within)

    def pending(self, event: str) -> list[Any]:
        queue = self.queue(event)
        return [queue.get_nowait() for _ in range(queue.qsize())]

    async def close(self) -> None:
        await self.sio.disconnect()


Connect = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def peers(server: RunningServer) -> AsyncIterator[Connect]:
    opened: list[Peer] = []

    async def connect(sub: str, *, ttl: int = 3600, at: RunningServer | None = None) -> Peer:
        peer = await Peer(at or server, sub, ttl=ttl).connect()
        opened.append(peer)
        return peer

    yield connect
    for peer in opened:
        await peer.close()


async def rename(
    http: httpx.AsyncClient, server: RunningServer, org: str, room_id: str, times: int
) -> None:
    for i in range(times):
        response = await http.patch(
            f"/api/rooms/{room_id}", json={"name": f"name {i}"}, headers=server.auth(org)
        )
        assert response.status_code == 200, response.text


# ---------------------------------------------------------------- presence


class TestPresence:
    async def test_a_user_comes_online_once_however_many_tabs_and_goes_offline_with_the_last(
        self, server, http, peers
    ):
        org, ann, bob = user_id(), user_id(), user_id()
        room_id = await create_room(http, server, org)
        await join(http, server, room_id, ann)
        await join(http, server, room_id, bob)
        watcher = await peers(org)
        await watcher.ok("room:subscribe", {"roomId": room_id})
        first = await watcher.next("presence:user_online")
        assert first["userId"] == org  # the watcher's own arrival reaches it too

        tab1, tab2 = await peers(ann), await peers(ann)
        await tab1.ok("room:subscribe", {"roomId": room_id})
        online = await watcher.next("presence:user_online")
        assert online["roomId"] == room_id
        assert online["userId"] == ann
        assert online["user"] == {"id": ann, "name": ann.title(), "avatar": None}
        datetime.fromisoformat(online["timestamp"])
        await tab2.ok("room:subscribe", {"roomId": room_id})

        listed = await watcher.ok("presence:get_online", {"roomId": room_id})
        assert listed["roomId"] == room_id
        assert listed["count"] == 2
        assert [u["id"] for u in listed["users"]] == [org, ann]
        assert set(listed["users"][1]) == {"id", "name", "avatar", "connectedAt"}

        # ann's second tab announced nothing: the next online the watcher sees is bob's.
        bobs = await peers(bob)
        await bobs.ok("room:subscribe", {"roomId": room_id})
        assert (await watcher.next("presence:user_online"))["userId"] == bob

        await tab1.close()  # ann still has tab2: not offline
        await bobs.close()
        offline = await watcher.next("presence:user_offline")
        assert offline["userId"] == bob  # bob's, not ann's: tab1 closing announced nothing
        assert set(offline) == {"roomId", "userId", "timestamp"}
        await tab2.close()
        assert (await watcher.next("presence:user_offline"))["userId"] == ann
        listed = await watcher.ok("presence:get_online", {"roomId": room_id})
        assert (listed["count"], [u["id"] for u in listed["users"]]) == (1, [org])

    async def test_unsubscribing_goes_offline(self, server, http, peers):
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        await join(http, server, room_id, ann)
        watcher, leaver = await peers(org), await peers(ann)
        await watcher.ok("room:subscribe", {"roomId": room_id})
        await leaver.ok("room:subscribe", {"roomId": room_id})
        assert (await watcher.next("presence:user_online"))["userId"] == org
        assert (await watcher.next("presence:user_online"))["userId"] == ann
        await leaver.ok("room:unsubscribe", {"roomId": room_id})
        assert (await watcher.next("presence:user_offline"))["userId"] == ann
        listed = await watcher.ok("presence:get_online", {"roomId": room_id})
        assert listed["count"] == 1

    async def test_a_removed_participant_goes_offline_when_evicted(self, server, http, peers):
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        part_id = await join(http, server, room_id, ann)
        watcher, removed = await peers(org), await peers(ann)
        await watcher.ok("room:subscribe", {"roomId": room_id})
        await removed.ok("room:subscribe", {"roomId": room_id})
        response = await http.delete(
            f"/api/rooms/{room_id}/participants/{part_id}", headers=server.auth(org)
        )
        assert response.status_code == 200
        left = await watcher.next("participant:left")
        assert left["userId"] == ann
        assert (await watcher.next("presence:user_offline"))["userId"] == ann
        listed = await watcher.ok("presence:get_online", {"roomId": room_id})
        assert [u["id"] for u in listed["users"]] == [org]

    async def test_deleting_the_room_evicts_everyone_from_presence(self, server, http, peers):
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        await join(http, server, room_id, ann)
        first, second = await peers(org), await peers(ann)
        await first.ok("room:subscribe", {"roomId": room_id})
        await second.ok("room:subscribe", {"roomId": room_id})
        await first.ok("typing:start", {"roomId": room_id})
        await second.next("typing:user_typing")
        response = await http.delete(f"/api/rooms/{room_id}", headers=server.auth(org))
        assert response.status_code == 200
        await first.next("room:deleted")
        await second.next("room:deleted")
        # Whichever socket is evicted first is announced offline to the other.
        gone = [asyncio.ensure_future(p.next("presence:user_offline")) for p in (first, second)]
        done, waiting = await asyncio.wait(gone, timeout=20, return_when="FIRST_COMPLETED")
        for task in waiting:
            task.cancel()
        assert len(done) == 1
        assert done.pop().result()["userId"] in {org, ann}
        # Neither socket is in the room any more, as far as presence knows.
        for peer in (first, second):
            refused = await peer.call("typing:start", {"roomId": room_id})
            assert refused["error"]["code"] == "PERMISSION_DENIED"

    async def test_only_members_may_ask_who_is_online(self, server, http, peers):
        room_id = await create_room(http, server, user_id())
        stranger = await peers(user_id())
        refused = await stranger.call("presence:get_online", {"roomId": room_id})
        assert refused["success"] is False
        assert refused["error"]["code"] == "PERMISSION_DENIED"
        assert refused["error"]["details"] == {"action": "presence:get_online", "roomId": room_id}
        missing = await stranger.call("presence:get_online", {"roomId": "room_nope"})
        assert missing["error"]["code"] == "ROOM_NOT_FOUND"
        garbage = await stranger.call("presence:get_online", {"room": room_id})
        assert garbage["error"]["code"] == "INVALID_PAYLOAD"

    async def test_a_member_not_subscribed_sees_the_list(self, server, http, peers):
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        await join(http, server, room_id, ann)
        subscriber, asker = await peers(org), await peers(ann)
        await subscriber.ok("room:subscribe", {"roomId": room_id})
        listed = await asker.ok("presence:get_online", {"roomId": room_id})
        assert [u["id"] for u in listed["users"]] == [org]


@pytest.fixture(scope="module")
def second_server(
    own_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server on its own database that drops silent clients after 4 s (1 s interval +
    3 s timeout) and keeps the default 5 s typing timeout (longer than a test)."""
    settings = Settings(
        database_url=own_database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("second-server")),
        ping_interval_seconds=1,
        ping_timeout_seconds=3,
    )
    with run_server(settings) as running:
        yield running


async def test_a_client_that_stops_answering_pings_goes_offline(second_server, peers):
    """No disconnect packet, no closed socket: only the ping timeout can tell.

    The silent client speaks the Engine.IO/Socket.IO wire by hand over a plain
    WebSocket, so it can subscribe and then simply stop answering pings while
    the TCP connection stays open.
    """
    server = second_server
    org, ann = user_id(), user_id()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        room_id = await create_room(http, server, org)
        await join(http, server, room_id, ann)
    watcher = await peers(org, at=server)
    await watcher.ok("room:subscribe", {"roomId": room_id})
    assert (await watcher.next("presence:user_online"))["userId"] == org

    ws_url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        assert (await ws.receive_str()).startswith("0")  # Engine.IO open
        await ws.send_str("40" + json.dumps({"token": server.token(ann)}))
        assert (await ws.receive_str()).startswith("40")  # Socket.IO connected
        await ws.send_str("421" + json.dumps(["room:subscribe", {"roomId": room_id}]))
        while not (message := await ws.receive_str()).startswith("431"):
            pass  # the room:subscribed notice, a server ping, …
        assert json.loads(message[3:])[0]["success"] is True
        assert (await watcher.next("presence:user_online"))["userId"] == ann
        # From here on nothing is read and no ping is answered.
        offline = await watcher.next("presence:user_offline", within=20)
        assert offline["userId"] == ann
        assert not ws.closed  # nobody closed it: the server gave up on pings


# ---------------------------------------------------------------- typing


class TestTyping:
    async def test_start_and_stop_reach_the_others_not_the_typist(self, server, http, peers):
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        await join(http, server, room_id, ann)
        typist, reader = await peers(ann), await peers(org)
        await typist.ok("room:subscribe", {"roomId": room_id})
        await reader.ok("room:subscribe", {"roomId": room_id})

        assert await typist.ok("typing:start", {"roomId": room_id}) == {
            "roomId": room_id,
            "typing": True,
        }
        typing = await reader.next("typing:user_typing")
        assert typing["roomId"] == room_id
        assert typing["userId"] == ann
        assert typing["user"] == {"id": ann, "name": ann.title(), "avatar": None}
        datetime.fromisoformat(typing["timestamp"])
        # Repeating start while typing only restarts the timer: no second notice.
        await typist.ok("typing:start", {"roomId": room_id})
        await typist.ok("typing:stop", {"roomId": room_id})
        stopped = await reader.next("typing:user_stopped")
        assert stopped["userId"] == ann
        assert reader.pending("typing:user_typing") == []
        # The reader types: the first typing notice the typist ever gets is the reader's.
        await reader.ok("typing:start", {"roomId": room_id})
        assert (await typist.next("typing:user_typing"))["userId"] == org
        assert typist.pending("typing:user_typing") == []
        assert typist.pending("typing:user_stopped") == []

    async def test_typing_stops_by_itself_after_the_configured_silence(self, server, http, peers):
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        await join(http, server, room_id, ann)
        typist, reader = await peers(ann), await peers(org)
        await typist.ok("room:subscribe", {"roomId": room_id})
        await reader.ok("room:subscribe", {"roomId": room_id})
        loop = asyncio.get_running_loop()
        started = loop.time()
        await typist.ok("typing:start", {"roomId": room_id})
        await reader.next("typing:user_typing")
        stopped = await reader.next("typing:user_stopped", within=10)
        assert stopped["userId"] == ann
        assert loop.time() - started >= server.settings.typing_timeout_seconds
        # After the automatic stop, a new start is announced again.
        await typist.ok("typing:start", {"roomId": room_id})
        assert (await reader.next("typing:user_typing"))["userId"] == ann

    @pytest.mark.parametrize("leave", ["unsubscribe", "disconnect"])
    async def test_leaving_the_room_stops_typing_then_goes_offline(
        self, second_server, peers, leave
    ):
        """On a server whose typing timeout (5 s) cannot be what stops the typist."""
        server = second_server
        org, ann = user_id(), user_id()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            room_id = await create_room(http, server, org)
            await join(http, server, room_id, ann)
        typist, reader = await peers(ann, at=server), await peers(org, at=server)
        await typist.ok("room:subscribe", {"roomId": room_id})
        await reader.ok("room:subscribe", {"roomId": room_id})
        await typist.ok("typing:start", {"roomId": room_id})
        typing = await reader.next("typing:user_typing")
        if leave == "unsubscribe":
            await typist.ok("room:unsubscribe", {"roomId": room_id})
        else:
            await typist.close()
        stopped = await reader.next("typing:user_stopped")
        assert stopped["userId"] == ann
        elapsed = datetime.fromisoformat(stopped["timestamp"]) - datetime.fromisoformat(
            typing["timestamp"]
        )
        assert elapsed.total_seconds() < server.settings.typing_timeout_seconds
        assert (await reader.next("presence:user_offline"))["userId"] == ann

    async def test_typing_needs_a_subscription(self, server, http, peers):
        org = user_id()
        room_id = await create_room(http, server, org)
        member = await peers(org)
        refused = await member.call("typing:start", {"roomId": room_id})
        assert refused["success"] is False
        assert refused["error"]["code"] == "PERMISSION_DENIED"
        assert refused["error"]["details"] == {"action": "typing:start", "roomId": room_id}
        # Stopping what never started is harmless.
        assert await member.ok("typing:stop", {"roomId": room_id}) == {
            "roomId": room_id,
            "typing": False,
        }


# ---------------------------------------------------------------- limits


class TestLimits:
    async def test_the_101st_event_in_a_minute_is_refused_whatever_its_name(
        self, server, http, peers
    ):
        org = user_id()
        room_id = await create_room(http, server, org)
        noisy = await peers(org)
        limit = server.settings.socket_events_per_minute
        for _ in range(limit):
            assert (await noisy.call("room:unsubscribe", {"roomId": room_id}))["success"]

        refused = await noisy.call("room:unsubscribe", {"roomId": room_id})
        assert refused["success"] is False
        assert refused["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        details = refused["error"]["details"]
        assert details["limit"] == limit
        assert details["scope"] == "client events"
        assert 1 <= details["retryAfter"] <= 60
        # Unknown events count and are refused the same way (not INVALID_PAYLOAD).
        unknown = await noisy.call("no:such_event", {})
        assert unknown["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        # Without an ack callback, the refusal is an `error` event.
        await noisy.sio.emit("typing:start", {"roomId": room_id})
        error = await noisy.next("error")
        assert error["code"] == "RATE_LIMIT_EXCEEDED"
        assert error["details"]["retryAfter"] >= 1
        # The limit is per connection: the same user's other socket is untouched.
        other = await peers(org)
        assert (await other.call("room:subscribe", {"roomId": room_id}))["success"]

    async def test_an_oversized_message_gets_payload_too_large_and_the_socket_stays(
        self, server, http, peers
    ):
        org = user_id()
        room_id = await create_room(http, server, org)
        sender = await peers(org)
        limit = server.settings.max_body_bytes
        big = {"roomId": room_id, "padding": "x" * (limit + 1)}
        refused = await sender.call("room:subscribe", big)
        assert refused["success"] is False
        assert refused["error"]["code"] == "PAYLOAD_TOO_LARGE"
        assert refused["error"]["details"]["event"] == "room:subscribe"
        assert refused["error"]["details"]["limit"] == limit
        assert refused["error"]["details"]["bytes"] > limit
        await sender.sio.emit("typing:start", {"roomId": room_id, "padding": "é" * limit})
        error = await sender.next("error")
        assert error["code"] == "PAYLOAD_TOO_LARGE"
        assert error["details"]["event"] == "typing:start"
        assert (await sender.call("room:subscribe", {"roomId": room_id}))["success"]

    async def test_a_message_over_the_frame_limit_ends_the_connection(self, server, http, peers):
        org = user_id()
        sender = await peers(org)
        huge = "x" * (server.settings.max_socket_frame_bytes + 1)
        await sender.sio.emit("room:subscribe", {"roomId": "r", "padding": huge})
        await asyncio.wait_for(sender.disconnected.get(), 20)
        assert sender.pending("error") == []


# ---------------------------------------------------------------- token expiry


class TestTokenExpiry:
    async def test_an_expiring_token_gets_token_expired_then_a_disconnect(
        self, server, http, peers
    ):
        short = await peers(user_id(), ttl=2)
        notice = await short.next("token:expired", within=10)
        assert notice["reason"] == "expired"
        assert datetime.fromisoformat(notice["expiredAt"]).tzinfo is not None
        await asyncio.wait_for(short.disconnected.get(), 10)
        assert not short.sio.connected

    async def test_reconnecting_with_a_fresh_token_and_last_seq_loses_nothing(
        self, server, http, peers
    ):
        org = user_id()
        room_id = await create_room(http, server, org)
        await rename(http, server, org, room_id, 3)
        seen: list[int] = []
        reached = asyncio.Event()

        def record(payload: dict[str, Any], *_offset: str) -> None:
            seen.append(payload["seq"])
            if payload["seq"] >= 10:
                reached.set()

        first = await peers(org, ttl=3)
        first.sio.on("room:created", record)
        first.sio.on("room:updated", record)
        ack = await first.ok("room:subscribe", {"roomId": room_id, "lastSeq": 0})
        assert ack["replaying"] == 4  # the ack comes first, then the replay
        await first.next("room:subscribed", within=10)
        assert seen == [1, 2, 3, 4]
        await first.next("token:expired", within=10)
        await asyncio.wait_for(first.disconnected.get(), 10)

        await rename(http, server, org, room_id, 5)  # committed while disconnected: 5..9

        second = await peers(org)  # a fresh token
        second.sio.on("room:updated", record)
        ack = await second.ok("room:subscribe", {"roomId": room_id, "lastSeq": seen[-1]})
        assert ack["headSeq"] == 9
        await second.next("room:subscribed", within=10)
        assert seen == list(range(1, 10))
        await rename(http, server, org, room_id, 1)  # and live again: 10
        await asyncio.wait_for(reached.wait(), 20)
        assert seen == list(range(1, 11))

    async def test_the_python_client_refreshes_its_token_and_resumes(self, server, http):
        org = user_id()
        room_id = await create_room(http, server, org)
        tokens = iter([server.token(org, ttl=3)])
        client = RoomcastClient(server.url, lambda: next(tokens, None) or server.token(org))
        seqs: list[int] = []
        arrived = asyncio.Event()

        def record(event: str, payload: dict[str, Any], *_offset: str) -> None:
            if "seq" in payload and payload.get("roomId") == room_id:
                seqs.append(payload["seq"])
                if payload["seq"] >= 21:
                    arrived.set()

        client.on("*", record)
        async with client:
            await client.subscribe(room_id, last_seq=0)
            expired = asyncio.Event()
            client.on("token:expired", lambda event, payload: expired.set())
            await asyncio.wait_for(expired.wait(), 10)
            await rename(http, server, org, room_id, 20)  # across the reconnect
            await asyncio.wait_for(arrived.wait(), 30)
        assert seqs == list(range(1, 22))
        assert client.reconnects == 1


# ---------------------------------------------------------------- room events


async def test_every_room_update_event_reaches_subscribers(server, http, peers):
    """room:updated, participant:updated, room:status_changed, winner:removed, room:deleted."""
    org, ann, bob = user_id(), user_id(), user_id()
    room_id = await create_room(http, server, org)
    part_id = await join(http, server, room_id, ann)
    await join(http, server, room_id, bob)  # a plain participant, eligible to win
    owner, member = await peers(org), await peers(ann)
    await owner.ok("room:subscribe", {"roomId": room_id})
    await member.ok("room:subscribe", {"roomId": room_id})
    base = f"/api/rooms/{room_id}"
    headers = server.auth(org)

    async def send(method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = await http.request(method, base + path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    await send("PATCH", "", {"name": "Renamed"})
    await send("PATCH", f"/participants/{part_id}", {"role": "moderator"})
    await send("POST", "/status", {"status": "active"})
    prize = (await send("POST", "/prizes", {"name": "Prize", "quantity": 1}))["prize"]
    winner = (await send("POST", "/draws", {"prizeId": prize["id"]}))["winner"]
    await send("DELETE", f"/winners/{winner['id']}")
    await send("DELETE", "")

    for peer in (owner, member):
        updated = await peer.next("room:updated")
        assert updated["changes"] == {"name": "Renamed"}
        role = await peer.next("participant:updated")
        assert (role["participantId"], role["changes"]) == (part_id, {"role": "moderator"})
        status = await peer.next("room:status_changed")
        assert (status["oldStatus"], status["newStatus"]) == ("draft", "active")
        removed = await peer.next("winner:removed")
        assert (removed["winnerId"], removed["prizeId"]) == (winner["id"], prize["id"])
        deleted = await peer.next("room:deleted")
        assert deleted["roomId"] == room_id
        seqs = [updated["seq"], role["seq"], status["seq"], removed["seq"], deleted["seq"]]
        assert seqs == sorted(seqs)
