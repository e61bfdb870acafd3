"""uvicorn's private parts: ``OneWriteHttpProtocol`` (http/uvicorn_protocol.py) and the
transport ``CheckedWebSocket.abort`` reaches through uvicorn's ASGI ``send``.

``OneWriteHttpProtocol`` subclasses ``HttpToolsProtocol`` and relies on:

* ``on_headers_complete`` building the request's ``RequestResponseCycle`` with the
  protocol's ``transport`` attribute as it is at that moment (swapped for the
  ``HeadWithBody`` holder around the call), and the cycle writing the response head
  and the body in two ``transport.write`` calls (the reason for the override);
* ``handle_websocket_upgrade`` handing the connection's ``self.transport`` to the
  WebSocket protocol (the real one: frames must not be held);
* httptools calling ``on_message_begin``, ``on_url`` and ``on_header(name, value)``
  while it parses, ``data_received`` turning a parser error (an exception raised in a
  callback included) into ``send_400_response(msg)``, and ``self.loop``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from roomcast.http.uvicorn_protocol import HeadWithBody, OneWriteHttpProtocol, with_limits
from tests.unit.test_uvicorn_protocol import Recording as _Recording

from .conftest import broken

OVERRIDE = "OneWriteHttpProtocol (src/http/uvicorn_protocol.py)"


class Recording(_Recording):
    def can_write_eof(self) -> bool:
        return False  # a refusal then closes at once (no linger timer left behind)


def _protocol(cls: type[HttpToolsProtocol], app: Any) -> tuple[Any, Recording]:
    config = Config(app=app, log_config=None, lifespan="off", ws="websockets-sansio")
    config.load()
    protocol = cls(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = Recording()
    protocol.connection_made(transport)
    return protocol, transport


def _answering(done: asyncio.Event) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})
        done.set()

    return app


async def test_OneWriteHttpProtocol_cycle_writes_through_the_transport_set_at_on_headers_complete():
    done = asyncio.Event()
    protocol, transport = _protocol(OneWriteHttpProtocol, _answering(done))
    protocol.data_received(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
    cycle = protocol.cycle
    assert cycle.transport is protocol._responses, broken(
        OVERRIDE,
        "HttpToolsProtocol.on_headers_complete no longer builds RequestResponseCycle"
        " with self.transport",
    )
    assert isinstance(cycle.transport, HeadWithBody)
    assert protocol.transport is transport, broken(OVERRIDE, "the connection lost its transport")
    await done.wait()
    assert len(transport.writes) == 1, broken(OVERRIDE, f"{len(transport.writes)} writes, not 1")
    assert transport.writes[0].endswith(b"\r\n\r\n{}")


async def test_OneWriteHttpProtocol_still_saves_a_write_over_plain_httptools():
    # What the override is for: uvicorn's own cycle writes the head, then the body.
    # If uvicorn joins them itself, the override no longer pays and should go.
    done = asyncio.Event()
    _, transport = _protocol(HttpToolsProtocol, _answering(done))
    _.data_received(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
    await done.wait()
    assert len(transport.writes) == 2, broken(
        OVERRIDE,
        f"plain HttpToolsProtocol now answers in {len(transport.writes)} write(s): the"
        " head-with-body holder may be obsolete (measure with bench --only O1, then remove it)",
    )


async def test_OneWriteHttpProtocol_websocket_upgrade_gets_the_real_transport():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    protocol, transport = _protocol(OneWriteHttpProtocol, app)
    protocol.data_received(
        b"GET /socket.io/ HTTP/1.1\r\nhost: t\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    )
    upgraded = transport.protocol
    assert upgraded not in (None, protocol), broken(
        OVERRIDE, "handle_websocket_upgrade no longer sets the WebSocket protocol on the transport"
    )
    assert upgraded.transport is transport, broken(
        OVERRIDE, "the WebSocket protocol was handed the response holder, not the connection"
    )


def _error(transport: Recording) -> tuple[int, str]:
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
async def test_OneWriteHttpProtocol_head_limits_reach_send_400_response(
    request_head: bytes, status: int, code: str
):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a refused request reached the app")

    limited = with_limits(max_headers=10, max_head_bytes=1024)
    protocol, transport = _protocol(limited, app)
    protocol.data_received(request_head)
    assert transport.writes, broken(
        OVERRIDE, "data_received no longer calls send_400_response on a parser error"
    )
    assert _error(transport) == (status, code), broken(
        OVERRIDE, f"the refusal is {_error(transport)}, not ({status}, {code})"
    )


async def test_OneWriteHttpProtocol_on_message_begin_starts_each_pipelined_request_afresh():
    answered: list[int] = []
    done = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        answered.append(1)
        done.set()

    limited = with_limits(max_headers=10, max_head_bytes=1024)
    protocol, transport = _protocol(limited, app)
    one = b"GET / HTTP/1.1\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(8)) + b"\r\n"
    for _ in range(3):  # 24 headers in all, 8 per request: each under the limit
        done.clear()
        protocol.data_received(one)
        await asyncio.wait_for(done.wait(), 5)
    assert len(answered) == 3, broken(
        OVERRIDE, "on_message_begin is no longer called per request: the head counts carried over"
    )
    assert all(w.startswith(b"HTTP/1.1 204") for w in transport.writes)
