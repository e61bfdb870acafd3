"""Hostile Socket.IO packets, sent raw: reserved names, second CONNECT, garbage.

Every case runs against the real server over a raw WebSocket (tests/e2e/rawsocket.py)
and ends by checking that a fresh, well-behaved client is still served. Covers the
private parts of python-socketio ``gateway/server.py``'s ``_Server`` overrides
(``_handle_eio_message``, ``_handle_event``, ``_handle_connect``,
``_handle_event_internal``, ``_binary_packet``) and engine.io's ``sockets``.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import structlog

from roomcast.gateway.guard import RESERVED_EVENTS

from .rawsocket import RawSocket, health_sockets
from .support import create_room, join, loud_records, rename_many, user_id


async def still_served(server) -> None:
    """A fresh client connects and gets an answer: the server survived the abuse."""
    raw = await RawSocket.connected(server, server.token(user_id()))
    await raw.send('420["presence:get_online",{"roomId":"room_nope"}]')
    answer = await raw.ack(0)
    assert answer["success"] is False
    assert answer["error"]["code"] in {"ROOM_NOT_FOUND", "PERMISSION_DENIED"}
    await raw.close()


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert loud_records(caplog.records) == []


class TestReservedEvents:
    @pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
    async def test_a_reserved_name_is_refused_with_an_ack(self, server, http, name, caplog):
        raw = await RawSocket.connected(server, server.token(user_id()))
        before = await health_sockets(http)
        await raw.send(f"421{json.dumps([name, {'token': server.token(user_id())}])}")
        answer = await raw.ack(1)
        assert answer["success"] is False
        assert answer["error"]["code"] == "INVALID_PAYLOAD"
        assert "reserved" in answer["error"]["message"]
        # Still connected, still counted: no lifecycle handler ran.
        assert await health_sockets(http) == before
        await raw.send('422["presence:get_online",{"roomId":"room_nope"}]')
        assert (await raw.ack(2))["success"] is False
        await raw.close()
        no_tracebacks(caplog)

    @pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
    async def test_a_reserved_name_without_ack_gets_an_error_event(self, server, name):
        raw = await RawSocket.connected(server, server.token(user_id()))
        await raw.send(f"42{json.dumps([name, 'x'])}")
        error = await raw.event("error")
        assert error["code"] == "INVALID_PAYLOAD"
        assert error["details"]["event"] == name
        await raw.close()
        await still_served(server)

    async def test_a_fake_disconnect_does_not_keep_a_removed_user_in_the_room(self, server, http):
        org, ann = user_id(), user_id()
        room_id = await create_room(http, server, org)
        part_id = await join(http, server, room_id, ann)
        raw = await RawSocket.connected(server, server.token(ann))
        await raw.send(f'421["room:subscribe",{{"roomId":"{room_id}","lastSeq":0}}]')
        assert (await raw.ack(1))["success"] is True
        before = await health_sockets(http)
        await raw.send('42["disconnect","x"]')
        assert (await raw.event("error"))["code"] == "INVALID_PAYLOAD"
        assert await health_sockets(http) == before
        removed = await http.delete(
            f"/api/rooms/{room_id}/participants/{part_id}", headers=server.auth(org)
        )
        assert removed.status_code == 200
        await raw.event("participant:left")
        await rename_many(http, server, org, room_id, 3, concurrency=1)
        # The organizer's own subscription proves the renames were broadcast.
        watcher = await RawSocket.connected(server, server.token(org))
        await watcher.send(f'421["room:subscribe",{{"roomId":"{room_id}","lastSeq":0}}]')
        assert (await watcher.ack(1))["success"] is True
        leaked = [f for f in _drain(raw) if "room:updated" in f]
        assert leaked == []
        await raw.close()
        await watcher.close()

    async def test_a_second_connect_is_refused_and_the_first_is_kept(self, server, http):
        raw = await RawSocket.connected(server, server.token(user_id()))
        before = await health_sockets(http)
        await raw.send("40" + json.dumps({"token": server.token(user_id())}))
        refused = await raw.next_matching(lambda f: f.startswith("44"))
        body = json.loads(refused[2:])
        assert body["data"]["code"] == "INVALID_PAYLOAD"
        assert "already connected" in body["message"]
        assert await health_sockets(http) == before
        await raw.send('421["presence:get_online",{"roomId":"room_nope"}]')
        assert (await raw.ack(1))["success"] is False
        await raw.close()


def _drain(raw: RawSocket) -> list[str]:
    frames = []
    while not raw.frames.empty():
        frame = raw.frames.get_nowait()
        if isinstance(frame, str):
            frames.append(frame)
    return frames


class TestUnknownNamespace:
    async def test_an_unknown_namespace_is_answered_with_a_message(self, server):
        raw = await RawSocket.open(server)
        await raw.send("40/nope," + json.dumps({"token": server.token(user_id())}))
        refused = await raw.next_matching(lambda f: f.startswith("44/nope,"))
        body = json.loads(refused[len("44/nope,") :])
        assert isinstance(body["message"], str)
        assert body["message"]
        assert body["data"]["code"] == "NOT_FOUND"
        await raw.close()


MALFORMED = [
    "4abc",  # Socket.IO packet type "a"
    "49",  # an unknown packet type
    "42",  # EVENT without data
    "42[]",  # EVENT without a name
    "42[1,2]",  # a name that is not a string
    '42{"a":1}',  # data that is not an array
    "42[",  # JSON that does not parse
    '42["x",' + "[" * 5000 + "]" * 5000 + "]",  # nested beyond the decoder's depth
    "44{}",  # CONNECT_ERROR from a client
    "4999999999999999999999999999999999999999",  # an ack id of 40 digits
    "45-[]",  # BINARY_EVENT with a bad attachment count
    '4500-["x",{"_placeholder":true,"num":0}]',  # 500 attachments announced
    '40-["x"]',  # BINARY_EVENT announcing no attachment
    # Engine.IO packets that do not decode
    "9",
    "x",
    "",
    "7probe",
]


class TestMalformedPackets:
    @pytest.mark.parametrize("frame", MALFORMED, ids=range(len(MALFORMED)))
    async def test_a_malformed_packet_closes_the_connection(self, server, frame, caplog):
        raw = await RawSocket.connected(server, server.token(user_id()))
        await raw.send(frame)
        await raw.wait_closed()
        no_tracebacks(caplog)
        await still_served(server)

    async def test_a_binary_frame_nobody_announced_closes_the_connection(self, server, caplog):
        raw = await RawSocket.connected(server, server.token(user_id()))
        await raw.send(b"\x00\x01garbage")
        await raw.wait_closed()
        no_tracebacks(caplog)

    async def test_a_bad_placeholder_in_a_binary_event_closes_the_connection(self, server, caplog):
        raw = await RawSocket.connected(server, server.token(user_id()))
        await raw.send('451-["x",{"_placeholder":true,"num":7}]')
        await raw.send(b"\x00")
        await raw.wait_closed()
        no_tracebacks(caplog)

    async def test_attachments_over_the_frame_limit_close_the_connection(self, server):
        raw = await RawSocket.connected(server, server.token(user_id()))
        limit = server.settings.max_socket_frame_bytes
        await raw.send('452-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
        await raw.send(b"\x00" * (limit // 2 + 1))
        await raw.send(b"\x00" * (limit // 2 + 1))
        await raw.wait_closed()

    async def test_a_flood_of_garbage_writes_at_most_one_log_line(self, server, caplog):
        with structlog.testing.capture_logs() as lines:
            sockets = [
                await RawSocket.connected(server, server.token(user_id())) for _ in range(20)
            ]
            for raw in sockets:
                await raw.send("4abc")
            for raw in sockets:
                await raw.wait_closed()
        malformed = [line for line in lines if line["event"] == "socket_packet_malformed"]
        assert len(malformed) <= 1
        assert all("exc_info" not in line for line in lines)
        no_tracebacks(caplog)
        await still_served(server)


class TestMessageLimit:
    async def test_a_space_before_the_array_does_not_bypass_the_message_limit(self, server):
        raw = await RawSocket.connected(server, server.token(user_id()))
        big = "x" * (server.settings.max_body_bytes + 10)
        await raw.send(f'421 ["room:subscribe",{{"roomId":"{big}"}}]')
        answer = await raw.ack(1)
        assert answer["error"]["code"] == "PAYLOAD_TOO_LARGE"
        await raw.close()

    async def test_an_oversized_packet_that_is_no_event_closes_the_connection(self, server):
        raw = await RawSocket.connected(server, server.token(user_id()))
        await raw.send("42" + " " * 600 + "[" + '"x",' * (server.settings.max_body_bytes // 3))
        await raw.wait_closed()


class TestConnectTimeout:
    async def test_a_session_without_connect_is_closed_after_the_timeout(
        self, database_url, tmp_path_factory
    ):
        from pathlib import Path

        from roomcast.config import Settings

        from ..conftest import JWT_SECRET, run_server

        settings = Settings(
            database_url=database_url,
            jwt_secret=JWT_SECRET,
            data_dir=Path(tmp_path_factory.mktemp("connect-timeout")),
            socket_connect_timeout_seconds=1.0,
        )
        with run_server(settings) as node:
            # Opened first: its timer was due before the idle one's.
            connected = await RawSocket.connected(node, node.token(user_id()))
            idle = await RawSocket.open(node)
            await idle.wait_closed(within=15)
            await connected.send('421["presence:get_online",{"roomId":"room_nope"}]')
            assert (await connected.ack(1))["success"] is False
            await connected.close()


class TestPolling:
    async def _open(self, http, server) -> str:
        response = await http.get("/socket.io/?EIO=4&transport=polling")
        assert response.status_code == 200
        sid = json.loads(response.text[1:])["sid"]
        posted = await http.post(
            f"/socket.io/?EIO=4&transport=polling&sid={sid}",
            content="40" + json.dumps({"token": server.token(user_id())}),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        assert posted.status_code == 200
        connected = await http.get(f"/socket.io/?EIO=4&transport=polling&sid={sid}")
        assert connected.text.startswith("40{"), connected.text
        return sid

    async def test_a_post_of_forty_packets_is_handled_whole(self, server, http):
        sid = await self._open(http, server)
        packets = [f'42{i}["presence:get_online",{{"roomId":"room_nope"}}]' for i in range(40)]
        posted = await http.post(
            f"/socket.io/?EIO=4&transport=polling&sid={sid}",
            content="\x1e".join(packets),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        assert posted.status_code == 200
        acks: set[int] = set()
        async with asyncio.timeout(20):
            while len(acks) < 40:
                polled = await http.get(f"/socket.io/?EIO=4&transport=polling&sid={sid}")
                for packet in polled.text.split("\x1e"):
                    if packet.startswith("43"):
                        acks.add(int(packet[2 : packet.index("[")]))
        assert acks == set(range(40))

    async def test_a_post_that_does_not_decode_ends_the_session(self, server, http, caplog):
        sid = await self._open(http, server)
        posted = await http.post(
            f"/socket.io/?EIO=4&transport=polling&sid={sid}",
            content="x\x1e\x1e9",
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        assert posted.status_code == 400
        after = await http.get(f"/socket.io/?EIO=4&transport=polling&sid={sid}")
        assert after.status_code == 400  # the session is gone
        no_tracebacks(caplog)
        await still_served(server)


async def test_an_event_after_leaving_the_namespace_closes_the_connection(server):
    raw = await RawSocket.connected(server, server.token(user_id()))
    await raw.send("41")  # Socket.IO DISCONNECT of "/": the Engine.IO session stays
    await raw.send('421["presence:get_online",{"roomId":"room_nope"}]')
    await raw.wait_closed()  # as Node's server does, not an answer that never comes
    await still_served(server)
