"""Realtime delivery end to end: relay → Socket.IO → clients, with real parts only."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from roomcast.client import SubscriptionError

from .support import Recorder, create_room, rename_many, user_id


class TestLiveDelivery:
    async def test_a_subscriber_receives_1000_commands_once_each_in_order(
        self, server, http, connected
    ):
        org = user_id()
        room_id = await create_room(http, server, org)
        client, recorder = await connected(org)
        ack = await client.subscribe(room_id, last_seq=0)
        assert ack["headSeq"] >= 1
        await rename_many(http, server, org, room_id, 999)
        await recorder.wait_for_seq(1000)
        assert recorder.seqs == list(range(1, 1001))
        assert len({p["eventId"] for _, p in recorder.events}) == 1000
        assert recorder.events[0][0] == "room:created"
        assert all(p["roomId"] == room_id for _, p in recorder.events)

    async def test_a_client_that_lost_its_transport_gets_what_it_missed(
        self, server, http, connected
    ):
        org = user_id()
        room_id = await create_room(http, server, org)
        client, recorder = await connected(org)
        await client.subscribe(room_id, last_seq=0)
        await rename_many(http, server, org, room_id, 20, concurrency=1)
        await recorder.wait_for_seq(21)

        # Kill the websocket under the client (no disconnect packet), write while it
        # is gone, and let python-socketio reconnect on its own.
        await client.sio.eio.ws.close()
        await rename_many(http, server, org, room_id, 50)
        await recorder.wait_for_seq(71)
        assert client.reconnects >= 1
        assert recorder.seqs == list(range(1, 72))

    async def test_the_subscribe_ack_carries_the_room_and_head(self, server, http, connected):
        org = user_id()
        room_id = await create_room(http, server, org)
        client, recorder = await connected(org)
        ack = await client.subscribe(room_id)
        assert ack["roomId"] == room_id
        assert ack["room"]["id"] == room_id
        assert ack["headSeq"] == 1
        await rename_many(http, server, org, room_id, 3, concurrency=1)
        await recorder.wait_for_seq(4)
        assert recorder.seqs == [2, 3, 4]  # live only: no replay without lastSeq

    async def test_replay_returns_events_in_seq_order(self, server, http, connected):
        org = user_id()
        room_id = await create_room(http, server, org)
        await rename_many(http, server, org, room_id, 9, concurrency=1)
        client, _ = await connected(org)
        data = await client.replay(room_id, after_seq=3, limit=4)
        assert [e["payload"]["seq"] for e in data["events"]] == [4, 5, 6, 7]
        assert [e["event"] for e in data["events"]] == ["room:updated"] * 4
        assert data["headSeq"] == 10


class TestAuthorisation:
    @pytest.mark.parametrize("auth", [{"token": "garbage"}, None, {"token": 5}, "token"])
    async def test_a_bad_or_missing_token_gets_connect_error_authentication_failed(
        self, server, auth
    ):
        client = socketio.AsyncClient(reconnection=False)
        errors: asyncio.Queue[Any] = asyncio.Queue()
        client.on("connect_error", errors.put)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(server.url, auth=auth, transports=["websocket"])
        error = await asyncio.wait_for(errors.get(), 10)
        assert error["message"].startswith("Authentication failed: ")  # seed 003's text
        assert error["data"]["code"] == "AUTHENTICATION_FAILED"

    async def test_an_expired_token_is_refused(self, server):
        client = socketio.AsyncClient(reconnection=False)
        errors: asyncio.Queue[Any] = asyncio.Queue()
        client.on("connect_error", errors.put)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                server.url, auth={"token": server.token("u", ttl=-60)}, transports=["websocket"]
            )
        error = await asyncio.wait_for(errors.get(), 10)
        assert "expired" in error["message"]

    async def test_a_non_member_cannot_subscribe_or_replay(self, server, http, connected):
        room_id = await create_room(http, server, user_id())
        stranger, _ = await connected(user_id())
        with pytest.raises(SubscriptionError) as refused:
            await stranger.subscribe(room_id)
        assert refused.value.code == "PERMISSION_DENIED"
        with pytest.raises(SubscriptionError) as refused:
            await stranger.replay(room_id, after_seq=0)
        assert refused.value.code == "PERMISSION_DENIED"

    async def test_an_unknown_room_is_room_not_found(self, server, connected):
        client, _ = await connected(user_id())
        with pytest.raises(SubscriptionError) as refused:
            await client.subscribe("room_does_not_exist")
        assert refused.value.code == "ROOM_NOT_FOUND"

    async def test_a_removed_participant_receives_nothing_after_the_removal(
        self, server, http, connected
    ):
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        joined = await http.post(f"/api/rooms/{room_id}/participants", headers=server.auth(ann))
        part_id = joined.json()["data"]["participant"]["id"]
        client, recorder = await connected(ann)
        await client.subscribe(room_id, last_seq=0)
        await recorder.wait_for_seq(2)
        removed = await http.delete(
            f"/api/rooms/{room_id}/participants/{part_id}", headers=server.auth(org)
        )
        assert removed.status_code == 200
        await rename_many(http, server, org, room_id, 5, concurrency=1)
        # The organizer's own subscription proves the later events were broadcast.
        watcher, watched = await connected(org)
        await watcher.subscribe(room_id, last_seq=0)
        await watched.wait_for_seq(8)
        assert recorder.seqs == [1, 2, 3]
        assert recorder.events[-1][0] == "participant:left"
        with pytest.raises(SubscriptionError) as refused:
            await client.replay(room_id, after_seq=3)
        assert refused.value.code == "PERMISSION_DENIED"


class TestMalformedPayloads:
    @pytest.mark.parametrize(
        ("event", "payload"),
        [
            ("room:subscribe", "room_1"),
            ("room:subscribe", {"roomId": 5}),
            ("room:subscribe", {"roomId": "r", "lastSeq": -1}),
            ("room:subscribe", {"roomId": "{room}", "lastSeq": 999}),
            ("room:replay", {"roomId": "r"}),
            ("room:replay", {"roomId": "r", "afterSeq": 0, "limit": 100000}),
            ("room:unsubscribe", None),
            ("no:such_event", {"a": 1}),
        ],
    )
    async def test_garbage_gets_invalid_payload_and_the_socket_stays_usable(
        self, server, http, event, payload
    ):
        org = user_id()
        room_id = await create_room(http, server, org)
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(
            server.url, auth={"token": server.token(org)}, transports=["websocket"]
        )
        try:
            if isinstance(payload, dict) and payload.get("roomId") == "{room}":
                payload = {**payload, "roomId": room_id}  # a real room, a seq it never reached
            ack = await client.call(event, payload, timeout=10)
            assert ack["success"] is False
            assert ack["error"]["code"] == "INVALID_PAYLOAD"
            ok = await client.call("room:subscribe", {"roomId": room_id}, timeout=10)
            assert ok["success"] is True
        finally:
            await client.disconnect()

    async def test_a_refusal_without_an_ack_comes_as_an_error_event(self, server):
        client = socketio.AsyncClient(reconnection=False)
        errors: asyncio.Queue[Any] = asyncio.Queue()
        client.on("error", errors.put)
        await client.connect(
            server.url, auth={"token": server.token(user_id())}, transports=["websocket"]
        )
        try:
            await client.emit("room:subscribe", {"roomId": 42})
            error = await asyncio.wait_for(errors.get(), 10)
            assert error["code"] == "INVALID_PAYLOAD"
            assert "message" in error
        finally:
            await client.disconnect()


class TestRejoinedMember:
    async def test_what_a_rejoined_member_missed_stays_hidden_from_any_starting_point(
        self, server, http, connected
    ):
        """Join (2), leave (3), room renamed twice (4, 5), rejoin (6): seqs 4 and 5 are
        hidden from them whether the replay starts at 0 or at 3."""
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        participants = f"/api/rooms/{room_id}/participants"
        assert (await http.post(participants, headers=server.auth(ann))).status_code == 201
        assert (
            await http.delete(f"{participants}/me", headers=server.auth(ann))
        ).status_code == 200
        await rename_many(http, server, org, room_id, 2, concurrency=1)
        assert (await http.post(participants, headers=server.auth(ann))).status_code == 201

        client, _ = await connected(ann)
        from_start = await client.replay(room_id, after_seq=0)
        from_three = await client.replay(room_id, after_seq=3)
        assert [e["payload"]["seq"] for e in from_start["events"]] == [1, 2, 3, 6]
        assert [e["payload"]["seq"] for e in from_three["events"]] == [6]
        assert from_three["nextAfter"] == 6

        recorder = Recorder()
        client.on("*", recorder)
        await client.subscribe(room_id, last_seq=0)
        await recorder.wait_for_seq(6)
        assert recorder.seqs == [1, 2, 3, 6]
