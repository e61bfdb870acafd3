"""python-socketio's private parts, as the gateway overrides them (gateway/server.py
``_Server``, gateway/sockets.py ``LocalSockets`` (the manager that forwards to
gateway/delivery.py ``RoomDelivery``), jsoncodec.py,
``Gateway.start``), checked on a real ``Gateway`` behind a real uvicorn, driven by a raw
Engine.IO/Socket.IO client (tests/e2e/rawsocket.py).

The Redis manager's hooks (``RedisSockets._handle_emit``/``_publish``/``_listen``) are in
test_socketio_redis_internals.py.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import socketio
from engineio import async_socket
from socketio import packet as sio_packet

from roomcast.config import Settings
from roomcast.gateway import jsoncodec
from roomcast.gateway import server as gateway_server
from roomcast.gateway.server import Gateway
from roomcast.gateway.sockets import LocalSockets
from roomcast.gateway.transport import CheckedSocket, OutboundQueue
from tests.conftest import RunningServer
from tests.e2e.rawsocket import RawSocket

from .conftest import broken, serving

SERVER = "gateway.server._Server"
DELIVERY = "gateway.delivery.RoomDelivery"
SOCKETS = "gateway.sockets.LocalSockets"
PID = "pid-contract"


def _fingerprint(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[tuple[Gateway, RunningServer]]:
    """A real Gateway on uvicorn; its CONNECT handler accepts anyone (no services needed)."""
    gw = Gateway()

    async def connect(sid: str, environ: Any, auth: Any = None) -> bool:
        gw.sio.pids[sid] = PID  # what Gateway._connect does with recovery on
        return True

    async def early(sid: str, *args: Any) -> Any:
        await gateway_server._send_ack.get()({"early": True})
        return {"late": True}  # must not be sent: the ack went out already

    async def binary(sid: str, data: Any) -> Any:
        return {"bytes": len(data["blob"]) if isinstance(data.get("blob"), bytes) else None}

    gw.sio.on("connect", connect)
    gw.sio.on("contract:early", early)
    gw.sio.on("contract:binary", binary)
    async with serving(socketio.ASGIApp(gw.sio)) as url:
        yield gw, RunningServer(url=url, settings=Settings())


async def _connected(running: RunningServer) -> RawSocket:
    raw = await RawSocket.open(running)
    await raw.send("40" + json.dumps({"token": "x"}))
    answer = await raw.next_matching(lambda f: f.startswith(("40", "44")))
    assert answer.startswith("40{"), answer
    raw.sid = json.loads(answer[2:])["sid"]
    raw.connect_reply = json.loads(answer[2:])  # type: ignore[attr-defined]
    return raw


# ------------------------------------------------------------------ _Server


def test__Server_handle_event_internal_replaces_the_body_of_python_socketio_5_18():
    # Ours re-implements it (count every event, record whether an ack was asked for,
    # let a handler ack early); a new upstream body may do something ours does not.
    assert _fingerprint(socketio.AsyncServer._handle_event_internal) == (
        "472e8b723a12d507ce3ee3eb8e1643cd326bdd9cc669392e6a636ec7aafdb366"
    ), broken(
        f"{SERVER}._handle_event_internal",
        "python-socketio's AsyncServer._handle_event_internal changed; ours copies its body"
        " (trigger the handler, ACK its result unless not_handled): merge the change",
    )
    params = list(inspect.signature(socketio.AsyncServer._handle_event_internal).parameters)
    assert params == ["self", "server", "sid", "eio_sid", "data", "namespace", "id"], broken(
        f"{SERVER}._handle_event_internal", f"its parameters are now {params}"
    )


async def test__Server_handle_event_internal_lets_a_handler_ack_early_and_once(gateway):
    _, running = gateway
    raw = await _connected(running)
    try:
        await raw.send('427["contract:early"]')
        assert await raw.ack(7) == {"early": True}, broken(
            f"{SERVER}._handle_event_internal", "the early ack did not arrive as sent"
        )
        await raw.send('428["contract:early"]')
        following = await raw.next_matching(lambda f: f.startswith("43"))
        assert following.startswith("438["), broken(  # the handler's return was acked too
            f"{SERVER}._handle_event_internal", f"a second ACK for one event: {following!r}"
        )
    finally:
        await raw.close()


async def test__Server_handle_event_internal_tells_handlers_no_ack_was_asked_for(gateway):
    _, running = gateway
    raw = await _connected(running)
    try:
        await raw.send('42["contract:unknown"]')  # no ack id: the refusal is an error event
        error = await raw.event("error")
        assert error["code"] == "INVALID_PAYLOAD", broken(
            f"{SERVER}._handle_event_internal", f"no `error` event for an unacked refusal: {error}"
        )
    finally:
        await raw.close()


async def test__Server_handle_event_refuses_reserved_event_names(gateway):
    _, running = gateway
    raw = await _connected(running)
    try:
        await raw.send('423["disconnect"]')
        answer = await raw.ack(3)
        assert answer["error"]["code"] == "INVALID_PAYLOAD", broken(
            f"{SERVER}._handle_event", f"a reserved name reached a handler: {answer}"
        )
    finally:
        await raw.close()


async def test__Server_handle_connect_answers_an_unknown_namespace_in_the_envelope(gateway):
    _, running = gateway
    raw = await RawSocket.open(running)
    try:
        await raw.send("40/nowhere,{}")
        answer = await raw.next_matching(lambda f: f.startswith("44/nowhere,"))
        body = json.loads(answer.split(",", 1)[1])
        assert body["data"] == {"code": "NOT_FOUND"}, broken(
            f"{SERVER}._handle_connect", f"CONNECT_ERROR is {body}"
        )
    finally:
        await raw.close()


async def test__Server_send_packet_carries_the_pid_in_the_CONNECT_reply(gateway):
    _, running = gateway
    raw = await _connected(running)
    try:
        reply = raw.connect_reply  # type: ignore[attr-defined]
        assert reply.get("pid") == PID, broken(
            f"{SERVER}._send_packet",
            f"the CONNECT reply no longer goes through _send_packet as {{sid}}: {reply}",
        )
    finally:
        await raw.close()


async def test__Server_handle_eio_message_closes_on_an_undecodable_packet(gateway):
    _, running = gateway
    raw = await _connected(running)
    await raw.send("49")  # Socket.IO packet type 9 does not exist: ValueError upstream
    await raw.wait_closed()  # raises if the connection stayed open


async def test__Server_binary_packet_reassembles_attachments_through_handle_eio_message(gateway):
    gw, running = gateway
    assert isinstance(gw.sio._binary_packet, dict), broken(
        f"{SERVER}._guarded_message", "AsyncServer._binary_packet is no longer a dict by eio_sid"
    )
    raw = await _connected(running)
    try:
        await raw.send('451-4["contract:binary",{"blob":{"_placeholder":true,"num":0}}]')
        await raw.send(b"\x00\x01\x02")
        assert await raw.ack(4) == {"bytes": 3}, broken(
            f"{SERVER}._guarded_message", "a binary event's attachment did not reach the handler"
        )
    finally:
        await raw.close()


async def test__Server_handle_eio_connect_swaps_the_socket_class_and_binds_its_queue(gateway):
    gw, running = gateway
    assert type(gw.sio.eio) is gateway_server._EngineServer, broken(
        f"{SERVER}._engineio_server_class", "python-socketio no longer builds eio through it"
    )
    before = set(gw.sio.eio.sockets)
    raw = await RawSocket.open(running)
    try:
        [eio_sid] = set(gw.sio.eio.sockets) - before
        socket = gw.sio.eio.sockets[eio_sid]
        assert type(socket) is CheckedSocket, broken(
            f"{SERVER}._handle_eio_connect",
            f"the socket is a {type(socket).__name__}: engine.io no longer makes an AsyncSocket"
            " in eio.sockets before calling the connect handler",
        )
        assert isinstance(socket.queue, OutboundQueue), broken(
            "gateway.server._EngineServer.create_queue", "the socket's queue is not ours"
        )
        assert socket.queue.limit == gw.sio.outbound_limit
        assert eio_sid in gw.sio._connect_timers
    finally:
        await raw.close()


async def test__Server_in_room_reads_the_managers_rooms_table(gateway):
    gw, running = gateway
    raw = await _connected(running)
    try:
        sid = raw.sid
        assert sid is not None
        await gw.sio.enter_room(sid, "room:contract")
        table = gw.sio.manager.rooms.get("/", {}).get("room:contract", {})
        assert isinstance(table.get(sid), str), broken(
            f"{SERVER}.in_room (and gateway/stats.py)",
            "manager.rooms is no longer namespace -> room -> {sid: eio_sid}",
        )
        assert gw.sio.in_room(sid, "room:contract")
        assert "room:contract" in gw.sio.rooms(sid), broken(
            f"{SERVER}.in_room", "AsyncServer.rooms(sid) disagrees with manager.rooms"
        )
        await gw.sio.leave_room(sid, "room:contract")
        assert not gw.sio.in_room(sid, "room:contract")
    finally:
        await raw.close()


def test_Gateway_start_initialises_the_manager_the_way_handle_eio_connect_does():
    source = inspect.getsource(socketio.AsyncServer._handle_eio_connect)
    assert "if not self.manager_initialized:" in source, broken(
        "Gateway.start", "_handle_eio_connect no longer guards manager.initialize() with the flag"
    )
    assert "self.manager.initialize()" in source, broken("Gateway.start", "initialize() moved")
    gw = Gateway()
    calls: list[int] = []
    gw.sio.manager.initialize = lambda: calls.append(1)
    assert gw.sio.manager_initialized is False
    gw.start()
    gw.start()
    assert gw.sio.manager_initialized is True
    assert calls == [1]


# ------------------------------------------------------------------ LocalSockets, RoomDelivery


def test_LocalSockets_emit_takes_what_AsyncServer_emit_passes():
    source = inspect.getsource(socketio.AsyncServer.emit)
    assert "await self.manager.emit(event, data, namespace, room=room," in source, broken(
        f"{SOCKETS}.emit",
        "AsyncServer.emit no longer calls manager.emit(event, data, namespace,"
        " room=..., skip_sid=..., callback=..., ...)",
    )
    ours = inspect.signature(LocalSockets.emit).parameters
    theirs = inspect.signature(socketio.AsyncManager.emit).parameters
    assert set(theirs) - {"kwargs"} <= set(ours) | {"ignore_queue"}, broken(
        f"{SOCKETS}.emit", f"AsyncManager.emit's parameters are now {list(theirs)}"
    )


async def test_LocalSockets_emit_and_RoomDelivery_put_deliver_a_room_event_to_a_socket(gateway):
    gw, running = gateway
    raw = await _connected(running)
    try:
        assert raw.sid is not None
        await gw.sio.enter_room(raw.sid, "room:deliver")
        payload = msgspec.Raw(b'{"roomId":"deliver","seq":0}')
        await gw.sio.emit("room:updated", payload, room="room:deliver")
        frame = await raw.next_matching(lambda f: f.startswith('42["room:updated"'))
        assert frame == '42["room:updated",{"roomId":"deliver","seq":0}]', broken(
            f"{SOCKETS}.emit/{DELIVERY}.put", f"the delivered frame is {frame!r}"
        )
        participants = list(gw.sockets.get_participants("/", "room:deliver"))
        assert participants == [(raw.sid, participants[0][1])], broken(
            f"{DELIVERY}._deliver", "get_participants no longer yields (sid, eio_sid)"
        )
        eio_sid = participants[0][1]
        assert gw.sockets.eio_sid_from_sid(raw.sid, "/") == eio_sid, broken(
            f"{SOCKETS} (delivery.Sockets)", "eio_sid_from_sid no longer maps sid → eio sid"
        )
        assert gw.sockets.eio_socket(eio_sid) is gw.sio.eio.sockets[eio_sid], broken(
            f"{SOCKETS}.eio_socket", "server.eio.sockets no longer maps eio sid → AsyncSocket"
        )
        assert gw.sockets.rooms["/"]["room:deliver"] == {raw.sid: eio_sid}, broken(
            f"{SOCKETS} (delivery.Sockets)", "AsyncManager.rooms is no longer ns → room → sids"
        )
    finally:
        await raw.close()


def test_RoomDelivery_put_does_what_AsyncSocket_send_does():
    # put() writes to socket.queue itself, skipping send()'s ping check and log line;
    # a change to send() (a bounded queue, a new step) must be looked at.
    assert _fingerprint(async_socket.AsyncSocket.send) == (
        "0437276ccba7ab091471e29f4bc6a0f178da7b16a590c707d6c69a97609e6d14"
    ), broken(
        f"{DELIVERY}.put",
        "engine.io's AsyncSocket.send changed; put() replicates it (queue.put_nowait per packet)",
    )


@pytest.mark.parametrize("namespace", ["/", "/rooms/r1"])
@pytest.mark.parametrize(
    "data", [{"seq": 1, "name": "é\u2028"}, [{"seq": 1}, {"seq": 2}], msgspec.Raw(b'{"seq":3}')]
)
def test_RoomDelivery_event_packet_encodes_as_python_socketio_does(namespace: str, data: Any):
    gw = Gateway()
    ours = gw.delivery.event_packet(namespace, "room:updated", data).data
    theirs = gw.sio.packet_class(
        sio_packet.EVENT, namespace=namespace, data=["room:updated", data]
    ).encode()
    assert ours == theirs, broken(
        f"{DELIVERY}.event_packet", f"Socket.IO's EVENT encoding is now {theirs!r}, ours {ours!r}"
    )


async def test_LocalSockets_leave_room_hook_sees_every_leave(gateway):
    gw, running = gateway
    raw = await _connected(running)
    left: list[tuple[str, str]] = []
    previous = gw.sockets.on_leave

    async def on_leave(sid: str, room: str) -> None:
        left.append((sid, room))

    gw.sockets.on_leave = on_leave
    try:
        assert raw.sid is not None
        await gw.sio.enter_room(raw.sid, "room:leave")
        await gw.sio.leave_room(raw.sid, "room:leave")
        assert left == [(raw.sid, "room:leave")], broken(
            f"{SOCKETS}.leave_room",
            "AsyncServer.leave_room no longer goes through manager.leave_room(sid, ns, room)",
        )
    finally:
        gw.sockets.on_leave = previous
        await raw.close()


# ------------------------------------------------------------------ jsoncodec


def test_jsoncodec_is_the_json_of_both_libraries_and_writes_raw_payloads_as_they_are():
    gw = Gateway()
    assert gw.sio.packet_class.json is jsoncodec, broken(
        "gateway/jsoncodec.py", "AsyncServer(json=...) no longer sets Packet.json"
    )
    import engineio.packet

    assert engineio.packet.Packet.json is jsoncodec, broken(
        "gateway/jsoncodec.py", "engine.io no longer takes the json module it is passed"
    )
    pkt = gw.sio.packet_class(sio_packet.EVENT, data=["e", msgspec.Raw(b'{"a": 1}')])
    assert pkt.encode() == '2["e",{"a": 1}]', broken(
        "gateway/jsoncodec.py", f"Packet.encode no longer calls json.dumps once: {pkt.encode()!r}"
    )
    decoded = gw.sio.packet_class(encoded_packet='2["e",{"a":1}]')
    assert decoded.data == ["e", {"a": 1}], broken("gateway/jsoncodec.py", "decode changed")
