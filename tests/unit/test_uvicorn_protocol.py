"""BoundedHttpProtocol answers a request as uvicorn does, and hands a WebSocket upgrade
the connection's own transport."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from roomcast.http.uvicorn_protocol import BoundedHttpProtocol


class Recording(asyncio.Transport):
    """A transport that keeps what is written, one entry per write call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return False  # a refusal then closes at once (no linger timer left behind)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


def protocol_for(
    app: Any, cls: type[Any] = BoundedHttpProtocol
) -> tuple[BoundedHttpProtocol, Recording]:
    config = Config(app=app, log_config=None, lifespan="off", ws="websockets-sansio")
    config.load()
    protocol = cls(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = Recording()
    protocol.connection_made(transport)
    return protocol, transport


async def test_uvicorn_answers_a_request_with_its_head_then_its_body():
    answered = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})
        answered.set()

    protocol, transport = protocol_for(app)
    protocol.data_received(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
    await answered.wait()
    written = b"".join(transport.writes)
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert written.endswith(b'\r\n\r\n{"ok":true}')
    assert protocol.transport is transport


async def test_a_body_larger_than_the_head_limit_is_not_counted_as_head():
    answered = asyncio.Event()
    got: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            got.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        answered.set()

    protocol, transport = protocol_for(app)
    body = b"x" * (protocol.max_head_bytes + 70_000)  # over the head's hard stop too
    protocol.data_received(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % len(body))
    protocol.data_received(body)
    await answered.wait()
    assert b"".join(got) == body
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 204")


async def test_a_websocket_upgrade_gets_the_real_transport():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    protocol, transport = protocol_for(app)
    protocol.data_received(
        b"GET /socket.io/ HTTP/1.1\r\nhost: t\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    )
    assert transport.protocol is not None
    assert transport.protocol is not protocol
    assert transport.protocol.transport is transport
