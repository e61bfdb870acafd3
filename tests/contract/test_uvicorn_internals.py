"""uvicorn's private parts: ``BoundedHttpProtocol`` (http/uvicorn_protocol.py) and
``LeanWebSocketProtocol`` (http/uvicorn_ws.py).

(``CheckedWebSocket.abort``'s reliance on uvicorn's WebSocket protocol is checked in
test_engineio_internals.py, on a real connection.)

``BoundedHttpProtocol`` subclasses ``HttpToolsProtocol`` and relies on httptools
calling ``on_message_begin``, ``on_url`` and ``on_header(name, value)`` while it
parses and ``on_headers_complete`` at the end of the head; on ``data_received``
turning a parser error (an exception raised in a callback included) into
``send_400_response(msg)``; and on ``self.transport`` / ``self.loop``.

Its head-with-body write (``HeadWithBody``, one ``send()`` per response) was removed:
bench O1 showed it did not pay (bench/README.md). What that relied on is checked no more.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any

import msgspec
import pytest
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import connect

from roomcast.http.uvicorn_protocol import with_limits
from roomcast.http.uvicorn_ws import LeanWebSocketProtocol
from roomcast.queues import LeanEvent, LeanQueue
from tests.unit.test_uvicorn_protocol import protocol_for

from .conftest import broken, serving

OVERRIDE = "BoundedHttpProtocol (src/http/uvicorn_protocol.py)"


def _error(transport: Any) -> tuple[int, str]:
    written = b"".join(transport.writes)
    head, _, body = written.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, msgspec.json.decode(body)["error"]["code"]


@pytest.mark.parametrize(
    ("request_head", "status", "code"),
    [
        # on_header: one header over the count
        (
            b"GET / HTTP/1.1\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(11)) + b"\r\n",
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        # on_url: the target alone over the byte limit
        (b"GET /" + b"a" * 2048 + b" HTTP/1.1\r\n\r\n", 413, "PAYLOAD_TOO_LARGE"),
        # httptools' own parser error (a control character in a header value)
        (b"GET / HTTP/1.1\r\nx-bad: a\x01b\r\n\r\n", 400, "INVALID_PAYLOAD"),
    ],
    ids=["on_header", "on_url", "parser_error"],
)
async def test_BoundedHttpProtocol_head_limits_reach_send_400_response(
    request_head: bytes, status: int, code: str
):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a refused request reached the app")

    limited = with_limits(max_headers=10, max_head_bytes=1024)
    protocol, transport = protocol_for(app, limited)
    protocol.data_received(request_head)
    assert transport.writes, broken(
        OVERRIDE, "data_received no longer calls send_400_response on a parser error"
    )
    assert _error(transport) == (status, code), broken(
        OVERRIDE, f"the refusal is {_error(transport)}, not ({status}, {code})"
    )


async def test_BoundedHttpProtocol_on_message_begin_starts_each_pipelined_request_afresh():
    answered: list[int] = []
    done = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        answered.append(1)
        done.set()

    limited = with_limits(max_headers=10, max_head_bytes=1024)
    protocol, transport = protocol_for(app, limited)
    one = b"GET / HTTP/1.1\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(8)) + b"\r\n"
    for _ in range(3):  # 24 headers in all, 8 per request: each under the limit
        done.clear()
        protocol.data_received(one)
        await asyncio.wait_for(done.wait(), 5)
    assert len(answered) == 3, broken(
        OVERRIDE, "on_message_begin is no longer called per request: the head counts carried over"
    )
    assert b"".join(transport.writes).count(b"HTTP/1.1 204 ") == 3


async def test_BoundedHttpProtocol_on_headers_complete_ends_the_head_count():
    read: list[bytes] = []
    done = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            read.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        done.set()

    limited = with_limits(max_headers=10, max_head_bytes=1024)
    protocol, _ = protocol_for(app, limited)
    body = b"x" * 100_000  # past the head's hard stop (max_head_bytes + 64 KiB)
    protocol.data_received(b"POST / HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % len(body))
    protocol.data_received(body)
    await asyncio.wait_for(done.wait(), 5)
    assert b"".join(read) == body, broken(
        OVERRIDE,
        "on_headers_complete is no longer called at the end of the head: a body"
        " was counted as head",
    )


# ------------------------------------------------------------ LeanWebSocketProtocol

LEAN_WS = "LeanWebSocketProtocol (src/http/uvicorn_ws.py)"


def test_LeanWebSocketProtocol_replaces_a_queue_used_only_through_put_nowait_get_and_empty():
    source = inspect.getsource(WebSocketsSansIOProtocol)
    assert "self.queue: asyncio.Queue[ASGIReceiveEvent] = asyncio.Queue()" in source, broken(
        LEAN_WS, "uvicorn no longer makes the protocol's queue in __init__ as it did"
    )
    used = set(re.findall(r"self\.queue\.(\w+)", source))
    assert used <= {"put_nowait", "get", "empty"}, broken(
        LEAN_WS, f"uvicorn now uses the queue's {sorted(used - {'put_nowait', 'get', 'empty'})}"
    )


def test_LeanWebSocketProtocol_replaces_an_event_used_through_set_clear_and_wait():
    source = inspect.getsource(WebSocketsSansIOProtocol)
    assert "self.writable = asyncio.Event()" in source, broken(
        LEAN_WS, "uvicorn no longer makes the protocol's writable Event in __init__"
    )
    used = set(re.findall(r"self\.writable\.(\w+)", source))
    assert used <= {"set", "clear", "wait", "is_set"}, broken(
        LEAN_WS, f"uvicorn now uses the event's {sorted(used - {'set', 'clear', 'wait', 'is_set'})}"
    )


def test_LeanWebSocketProtocol_drops_a_handshake_read_only_until_the_accept():
    readers = {
        name
        for name, member in vars(WebSocketsSansIOProtocol).items()
        if inspect.isfunction(member)
        and re.search(r"self\.(request|response)\b", inspect.getsource(member))
    }
    assert readers == {"handle_connect", "send"}, broken(
        LEAN_WS, f"the handshake's request/response are read in {sorted(readers)}"
    )
    send = inspect.getsource(WebSocketsSansIOProtocol.send)
    accept = send.index('if message["type"] == "websocket.accept":')
    after = send.index('elif message["type"] == "websocket.close":', accept)
    reads = [m.start() for m in re.finditer(r"self\.(request|response)\b", send)]
    assert all(accept < at < after for at in reads), broken(
        LEAN_WS, "send reads the handshake outside the branch that sends the accept"
    )


async def test_LeanWebSocketProtocol_carries_a_websocket_end_to_end():
    seen: dict[str, Any] = {}
    ended = asyncio.Event()

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        seen["protocol"] = getattr(send, "__self__", None)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"].upper()})
        seen["last"] = await receive()
        ended.set()

    async with serving(echo) as url, connect(url.replace("http", "ws") + "/") as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), 5) == "HELLO"
        protocol = seen["protocol"]
        assert type(protocol) is LeanWebSocketProtocol, broken(
            LEAN_WS, f"uvicorn ran {type(protocol).__name__} for ws=LeanWebSocketProtocol"
        )
        assert isinstance(protocol.queue, LeanQueue)
        assert isinstance(protocol.writable, LeanEvent)
        assert (protocol.request, protocol.response) == (None, None), broken(
            LEAN_WS, "the handshake was kept past the accept"
        )
        await ws.close()
        await asyncio.wait_for(ended.wait(), 5)  # the disconnect, through the queue
    assert seen["last"]["type"] == "websocket.disconnect", broken(
        LEAN_WS, "the client's close did not reach the app as websocket.disconnect"
    )
