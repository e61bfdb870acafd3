"""OneWriteHttpProtocol: a response's head and body leave in one write; nothing is lost,
reordered or held past the loop turn; the connection itself keeps the real transport."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from roomcast.http.uvicorn_protocol import HeadWithBody, OneWriteHttpProtocol

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


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


async def _one_turn() -> None:
    # HeadWithBody flushes with call_soon: one pass of the loop is exactly what it waits for.
    await asyncio.sleep(0)


async def test_a_head_and_its_body_are_one_write():
    transport = Recording()
    holder = HeadWithBody(transport, asyncio.get_running_loop())
    holder.write(HEAD)
    assert transport.writes == []
    holder.write(b"{}")
    assert transport.writes == [HEAD + b"{}"]
    await _one_turn()
    assert transport.writes == [HEAD + b"{}"]  # the scheduled flush finds nothing left


async def test_a_head_whose_body_is_late_leaves_at_the_end_of_the_turn():
    transport = Recording()
    holder = HeadWithBody(transport, asyncio.get_running_loop())
    holder.write(HEAD)
    await _one_turn()
    assert transport.writes == [HEAD]
    holder.write(b"{}")
    assert transport.writes == [HEAD, b"{}"]


async def test_interim_responses_and_body_chunks_are_written_at_once():
    transport = Recording()
    holder = HeadWithBody(transport, asyncio.get_running_loop())
    holder.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    holder.write(b"5\r\nhello\r\n")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", b"5\r\nhello\r\n"]


async def test_closing_writes_a_held_head_first():
    transport = Recording()
    holder = HeadWithBody(transport, asyncio.get_running_loop())
    holder.write(HEAD)
    holder.close()
    assert transport.writes == [HEAD]
    assert transport.closed
    assert holder.is_closing()


def _protocol(app: Any) -> tuple[OneWriteHttpProtocol, Recording]:
    config = Config(app=app, log_config=None, lifespan="off", ws="websockets-sansio")
    config.load()
    protocol = OneWriteHttpProtocol(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = Recording()
    protocol.connection_made(transport)
    return protocol, transport


async def test_uvicorn_answers_a_request_in_one_write():
    answered = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})
        answered.set()

    protocol, transport = _protocol(app)
    protocol.data_received(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
    await answered.wait()
    [written] = transport.writes
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert written.endswith(b'\r\n\r\n{"ok":true}')
    assert protocol.transport is transport  # the connection keeps the real transport


async def test_a_websocket_upgrade_gets_the_real_transport():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    protocol, transport = _protocol(app)
    protocol.data_received(
        b"GET /socket.io/ HTTP/1.1\r\nhost: t\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    )
    assert transport.protocol is not None
    assert transport.protocol is not protocol
    assert transport.protocol.transport is transport
