"""python-engineio's private parts (gateway/transport.py, gateway/server.py), checked on a
real Gateway behind a real uvicorn.

* ``CheckedWebSocket`` is installed as the server's ``_async["websocket"]`` (a copy of
  the ASGI driver's module-wide table, so other servers are untouched); engine.io builds
  it as ``cls(socket._websocket_handler, server)`` and calls it with the environ, which
  carries uvicorn's ``asgi.send``; ``wait()`` is what engine.io reads frames with.
* ``CheckedWebSocket.abort`` reaches uvicorn's connection as ``asgi_send.__self__.transport``
  (uvicorn's ASGI ``send`` is its WebSocket protocol's bound method).
* ``CheckedSocket`` is swapped in as the class of engine.io's ``AsyncSocket`` right after
  it is made (same state, no slots of its own) and wraps ``handle_post_request``.
* ``OutboundQueue`` is the socket's ``queue`` (``server.create_queue()`` with no
  arguments), fed through ``put``/``put_nowait`` and read through ``get``/``get_nowait``.
* ``Payload.max_decode_packets`` is raised module-wide (16 upstream).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator
from typing import Any

import engineio
import httpx
import pytest
import socketio
from engineio import async_socket
from engineio import payload as eio_payload
from engineio.async_drivers import asgi as eio_asgi

from roomcast.config import Settings
from roomcast.gateway.server import Gateway
from roomcast.gateway.transport import CheckedWebSocket, OutboundQueue
from tests.conftest import RunningServer
from tests.e2e.rawsocket import RawSocket

from .conftest import broken, serving

WEBSOCKET = "gateway.transport.CheckedWebSocket"


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[tuple[Gateway, RunningServer]]:
    gw = Gateway()
    async with serving(socketio.ASGIApp(gw.sio)) as url:
        yield gw, RunningServer(url=url, settings=Settings())


async def _session(gw: Gateway, running: RunningServer) -> tuple[RawSocket, Any]:
    before = set(gw.sio.eio.sockets)
    raw = await RawSocket.open(running)
    [eio_sid] = set(gw.sio.eio.sockets) - before
    return raw, gw.sio.eio.sockets[eio_sid]


def test_CheckedWebSocket_is_installed_per_server_over_the_asgi_drivers_table():
    gw = Gateway()
    assert gw.sio.eio._async["websocket"] is CheckedWebSocket
    assert eio_asgi._async["websocket"] is eio_asgi.WebSocket, broken(
        WEBSOCKET, "the ASGI driver's module-wide table was changed by one server"
    )
    assert engineio.AsyncServer(async_mode="asgi")._async["websocket"] is eio_asgi.WebSocket, (
        broken(WEBSOCKET, "engine.io no longer looks the WebSocket class up in server._async")
    )


async def test_CheckedWebSocket_is_built_with_the_sockets_handler_and_reads_the_frames(gateway):
    gw, running = gateway
    raw, socket = await _session(gw, running)
    ws = getattr(socket, "roomcast_ws", None)
    assert isinstance(ws, CheckedWebSocket), broken(
        WEBSOCKET, "engine.io no longer builds it with the socket's bound _websocket_handler"
    )
    await raw.send("9not-a-packet")  # wait() refuses it: the connection ends
    await raw.wait_closed()


async def test_CheckedWebSocket_abort_reaches_uvicorns_transport(gateway):
    gw, running = gateway
    raw, socket = await _session(gw, running)
    ws = socket.roomcast_ws
    protocol = getattr(ws.asgi_send, "__self__", None)
    transport = getattr(protocol, "transport", None)
    assert isinstance(transport, asyncio.Transport), broken(
        f"{WEBSOCKET}.abort",
        "uvicorn's asgi.send is no longer a bound method of a protocol with .transport",
    )
    ws.abort()
    await raw.wait_closed()


async def test_CheckedSocket_ends_a_polling_session_whose_post_does_not_decode(gateway):
    gw, running = gateway
    async with httpx.AsyncClient(base_url=running.url) as client:
        opened = await client.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        sid = json.loads(opened.text[1:])["sid"]
        assert type(gw.sio.eio.sockets[sid]).__name__ == "CheckedSocket"
        posted = await client.post(
            "/socket.io/", params={"EIO": "4", "transport": "polling", "sid": sid}, content="x"
        )
        assert posted.status_code == 400, broken(
            "gateway.transport.CheckedSocket.handle_post_request",
            f"a POST that does not decode got HTTP {posted.status_code}",
        )
        assert sid not in gw.sio.eio.sockets or gw.sio.eio.sockets[sid].closed, broken(
            "gateway.transport.CheckedSocket.handle_post_request", "the session is still open"
        )


async def test_OutboundQueue_sees_every_packet_engine_io_queues_and_takes(gateway):
    gw, running = gateway
    raw, socket = await _session(gw, running)
    try:
        queue = socket.queue
        assert isinstance(queue, OutboundQueue)
        await socket.send(engineio.packet.Packet(engineio.packet.MESSAGE, "x" * 99))
        # engine.io's send awaited queue.put; the writer task takes it with get/get_nowait.
        frame = await raw.next()
        assert frame == "4" + "x" * 99
        assert queue.bytes == 0, broken(
            "gateway.transport.OutboundQueue",
            f"{queue.bytes} bytes still counted: engine.io no longer puts and gets through"
            " put_nowait/get_nowait",
        )
    finally:
        await raw.close()


def test_OutboundQueue_counts_through_asyncios_put_and_get():
    async def run() -> tuple[int, int]:
        queue = OutboundQueue()
        await queue.put(engineio.packet.Packet(engineio.packet.MESSAGE, "abc"))
        queued = queue.bytes
        await queue.get()
        return queued, queue.bytes

    assert asyncio.run(run()) == (4, 0), broken(
        "gateway.transport.OutboundQueue",
        "asyncio.Queue.put/get no longer call put_nowait/get_nowait",
    )


def test_Payload_max_decode_packets_is_raised_and_read_by_decode():
    assert eio_payload.Payload.max_decode_packets == 512, broken(
        "gateway/transport.py Payload.max_decode_packets", "not raised (is transport imported?)"
    )
    many = "\x1e".join(["4x"] * 100)
    decoded = eio_payload.Payload(encoded_payload=many)
    assert len(decoded.packets) == 100, broken(
        "gateway/transport.py Payload.max_decode_packets", "decode no longer reads the attribute"
    )


def test_EngineServer_get_socket_hands_an_ended_polling_session_to_its_next_GET():
    """A polling session ended as a slow consumer is handed to its next GET
    (gateway/server.py ``_EngineServer._get_socket``): engine.io must still look
    sessions up through it, and only there decide that a closed one is gone;
    ``CheckedSocket`` counts GETs in flight around ``handle_get_request`` and ``send``
    (gateway/transport.py). The behaviour is covered end to end by
    tests/e2e/test_slow_polling.py."""
    override = "gateway/server.py _EngineServer._get_socket"

    def params(function: Any) -> list[str]:
        return list(inspect.signature(function).parameters)

    assert params(engineio.AsyncServer._get_socket) == ["self", "sid"], broken(
        override, "_get_socket's signature changed"
    )
    assert "self._get_socket(sid)" in inspect.getsource(engineio.AsyncServer.handle_request), (
        broken(override, "handle_request no longer finds sessions through _get_socket")
    )
    assert "closed" in inspect.getsource(engineio.AsyncServer._get_socket), broken(
        override, "_get_socket no longer drops closed sessions itself"
    )
    counted = "gateway/transport.py CheckedSocket (GETs in flight)"
    assert params(async_socket.AsyncSocket.handle_get_request) == ["self", "environ"], broken(
        counted, "handle_get_request's signature changed"
    )
    assert params(async_socket.AsyncSocket.send) == ["self", "pkt"], broken(
        counted, "send's signature changed"
    )


async def test__Server_drop_ends_a_session_through_AsyncSocket_close_and_the_queue(gateway):
    # _drop and _end_slow: close(wait=False, abort=...), the writer's None sentinel,
    # and the session taken out of eio.sockets.
    gw, running = gateway
    params = list(inspect.signature(async_socket.AsyncSocket.close).parameters)
    assert params == ["self", "wait", "abort", "reason"], broken(
        "gateway.server._Server._drop/_end_slow", f"AsyncSocket.close takes {params}"
    )
    sig = list(inspect.signature(socketio.AsyncServer._handle_eio_disconnect).parameters)
    assert sig == ["self", "eio_sid", "reason"], broken(
        "gateway.server._Server._handle_eio_disconnect", f"its parameters are now {sig}"
    )
    raw, socket = await _session(gw, running)
    await gw.sio._drop(socket.sid)
    await raw.wait_closed()
    assert socket.sid not in gw.sio.eio.sockets


def test_RoomcastClient_renew_waits_on_the_engine_io_clients_state_and_http_session():
    # src/client.py RoomcastClient._renew: after a token expiry it waits until
    # engine.io's client is "disconnected" with its HTTP session dropped (http None).
    client = engineio.AsyncClient()
    assert client.state == "disconnected", broken(
        "RoomcastClient._renew (src/client.py)", "AsyncClient.state no longer starts 'disconnected'"
    )
    assert client.http is None, broken(
        "RoomcastClient._renew (src/client.py)", "AsyncClient.http is no longer None at rest"
    )
    reset = inspect.getsource(engineio.AsyncClient._reset)
    assert "self.http = None" in reset, broken(
        "RoomcastClient._renew (src/client.py)",
        "AsyncClient._reset no longer drops the HTTP session: _renew would wait 5 s for nothing",
    )


def test_CheckedWebSocket_drops_a_body_reader_only_a_polling_POST_reads():
    readers = {
        f"{cls.__name__}.{name}"
        for cls in (async_socket.AsyncSocket, engineio.AsyncServer)
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and "wsgi.input" in inspect.getsource(member)
    }
    assert readers == {"AsyncSocket.handle_post_request"}, broken(
        f"{WEBSOCKET}.__call__", f"engine.io reads environ['wsgi.input'] in {sorted(readers)}"
    )
