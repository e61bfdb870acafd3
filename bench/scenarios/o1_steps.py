"""O1's second half: each overridden step alone, in the harness process, ours against
the library's own way of doing it, interleaved in short blocks.

End to end (o1_overrides.py) a few per cent of a command's CPU drowns in a shared
machine's noise; here each block times one step a few thousand times on this
thread's CPU clock (``time.thread_time``: user and kernel time of this thread
only), ours and the library's back to back, in alternating order, and every block
pair is one sample of the ratio. The steps are the ones each override replaces:

* ``OneWriteHttpProtocol``: a response's head and body written to a real loopback
  TCP connection through ``HeadWithBody`` (one ``send()``), against the two writes
  uvicorn's cycle makes; a thread of its own reads the other end.
* ``BodyRequest``: ``await request.body()`` of a PATCH's request (its headers, one
  ``http.request`` message), against Litestar's ``Request``.
* ``SuccessResponse``: ``ok(...)`` sent to an ASGI ``send``, against the same body
  through a Litestar ``Response`` and ``to_asgi_response`` (bench/variant.py).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar, Request, patch

from bench.variant import through_litestar
from roomcast.http.requests import BodyRequest
from roomcast.http.responses import ok
from roomcast.http.uvicorn_protocol import HeadWithBody

Step = Callable[[], Awaitable[None]]

_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 312\r\n"
    b'etag: "42"\r\nx-request-id: 0123456789abcdef0123456789abcdef\r\n\r\n'
)
_BODY = b"{" + b"x" * 310 + b"}"
_DATA = {
    "room": {"id": "room_0123456789abcdef", "name": "bench 1", "status": "draft", "version": 42}
}


async def timed_pairs(
    ours: Step, theirs: Step, *, blocks: int, per_block: int
) -> list[tuple[float, float]]:
    """``blocks`` samples of (ours, theirs) µs of this thread's CPU per call."""

    async def block(step: Step) -> float:
        started = time.thread_time()
        for _ in range(per_block):
            await step()
        return (time.thread_time() - started) / per_block * 1e6

    await block(ours)  # warm both (first calls fill caches)
    await block(theirs)
    pairs = []
    for i in range(blocks):
        if i % 2 == 0:
            a = await block(ours)
            b = await block(theirs)
        else:
            b = await block(theirs)
            a = await block(ours)
        pairs.append((a, b))
    return pairs


class _Loopback:
    """A connected loopback TCP pair; a daemon thread drains the far end."""

    def __init__(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        self.near = socket.create_connection(listener.getsockname())
        self.near.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.far, _ = listener.accept()
        listener.close()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while self.far.recv(1 << 20):
            pass

    def close(self) -> None:
        self.near.close()
        self._reader.join(timeout=5)
        self.far.close()


class _SocketTransport(asyncio.Transport):
    """The part of a transport a response cycle uses, writing straight to the socket
    (as an asyncio transport does while its buffer is empty)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def write(self, data: Any) -> None:
        self._sock.sendall(data)

    def is_closing(self) -> bool:
        return False


async def one_write(blocks: int, per_block: int) -> list[tuple[float, float]]:
    pair = _Loopback()
    try:
        plain = _SocketTransport(pair.near)
        held = HeadWithBody(plain, asyncio.get_running_loop())

        async def ours() -> None:
            held.write(_HEAD)
            held.write(_BODY)
            await asyncio.sleep(0)  # the holder's scheduled flush runs (and finds nothing)

        async def theirs() -> None:
            plain.write(_HEAD)
            plain.write(_BODY)
            await asyncio.sleep(0)

        return await timed_pairs(ours, theirs, blocks=blocks, per_block=per_block)
    finally:
        pair.close()


@patch("/api/rooms/{room_id:str}", request_max_body_size=64 * 1024)
async def _route(room_id: str) -> None:
    return None


_app = Litestar([_route])
_PATCH_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"authorization", b"Bearer " + b"t" * 180),
    (b"content-type", b"application/json"),
    (b"content-length", b"16"),
    (b"if-match", b'"41"'),
    (b"idempotency-key", b"0123456789abcdef"),
]


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "PATCH",
        "path": "/api/rooms/room_1",
        "headers": _PATCH_HEADERS,
        "route_handler": _route,
        "app": _app,
        "state": {},
    }


async def body_request(blocks: int, per_block: int) -> list[tuple[float, float]]:
    message = {"type": "http.request", "body": b'{"name":"bench"}', "more_body": False}

    async def receive() -> Any:
        return message

    def reading(cls: type[Request[Any, Any, Any]]) -> Step:
        async def step() -> None:
            await cls(_scope(), receive).body()  # type: ignore[arg-type]

        return step

    return await timed_pairs(
        reading(BodyRequest), reading(Request), blocks=blocks, per_block=per_block
    )


async def success_response(blocks: int, per_block: int) -> list[tuple[float, float]]:
    async def receive() -> Any:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        return None

    async def ours() -> None:
        await ok(_DATA, etag=42)(_scope(), receive, send)  # type: ignore[arg-type]

    async def theirs() -> None:
        await through_litestar(ok(_DATA, etag=42), _scope(), receive, send)  # type: ignore[arg-type]

    return await timed_pairs(ours, theirs, blocks=blocks, per_block=per_block)


STEPS: dict[str, Callable[[int, int], Awaitable[list[tuple[float, float]]]]] = {
    "no-one-write": one_write,
    "no-body-request": body_request,
    "no-success-bypass": success_response,
}
