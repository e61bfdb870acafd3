"""Contract test: the private parts of python-socketio, engine.io and uvicorn that the
hostile-input guards override still exist with the shape they rely on.

Named in docs/architecture.md (*Private parts overridden*). If one of these fails
after an upgrade, the guard in gateway/server.py, gateway/transport.py or
http/uvicorn_protocol.py must be re-checked against the new library code.
"""

from __future__ import annotations

import inspect

import engineio
import socketio
from engineio import async_socket
from engineio.async_drivers import asgi as eio_asgi
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def params(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_python_socketio_server_hooks():
    server = socketio.AsyncServer
    assert params(server._handle_eio_message) == ["self", "eio_sid", "data"]
    assert params(server._handle_event) == ["self", "eio_sid", "namespace", "id", "data"]
    assert params(server._handle_connect) == ["self", "eio_sid", "namespace", "data"]
    assert params(server._handle_eio_connect) == ["self", "eio_sid", "environ"]
    assert params(server._handle_eio_disconnect) == ["self", "eio_sid", "reason"]
    assert params(server._handle_event_internal)[:4] == ["self", "server", "sid", "eio_sid"]
    assert hasattr(socketio.AsyncServer(), "_binary_packet")
    assert socketio.AsyncServer.reserved_events == ["connect", "disconnect"]


def test_engineio_hooks():
    server = engineio.AsyncServer(async_mode="asgi")
    assert "websocket" in server._async
    assert server._async["websocket"] is eio_asgi.WebSocket
    assert isinstance(server.sockets, dict)
    assert params(async_socket.AsyncSocket.close) == ["self", "wait", "abort", "reason"]
    assert params(eio_asgi.WebSocket.wait) == ["self"]
    # A polling session ended as a slow consumer is handed to its next GET
    # (gateway/server.py `_EngineServer._get_socket`): engine.io must still look
    # sessions up through it, and only there decide that a closed one is gone.
    assert params(engineio.AsyncServer._get_socket) == ["self", "sid"]
    assert "self._get_socket(sid)" in inspect.getsource(engineio.AsyncServer.handle_request)
    assert "closed" in inspect.getsource(engineio.AsyncServer._get_socket)
    # `CheckedSocket` counts GETs in flight around these (gateway/transport.py).
    assert params(async_socket.AsyncSocket.handle_get_request) == ["self", "environ"]
    assert params(async_socket.AsyncSocket.send) == ["self", "pkt"]


def test_uvicorn_httptools_hooks():
    for name in ("data_received", "on_header", "on_url", "on_message_begin", "send_400_response"):
        assert callable(getattr(HttpToolsProtocol, name))
    assert params(HttpToolsProtocol.on_header) == ["self", "name", "value"]
    assert params(HttpToolsProtocol.send_400_response) == ["self", "msg"]
