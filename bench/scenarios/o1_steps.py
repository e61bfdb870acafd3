"""O1's second half: each overridden step alone, in the harness process, ours against
the library's own way of doing it, interleaved in short blocks.

End to end (o1_overrides.py) a few per cent of a command's CPU drowns in a shared
machine's noise; here each block times one step a few thousand times on this
thread's CPU clock (``time.thread_time``: user and kernel time of this thread
only), ours and the library's back to back, in alternating order, and every block
pair is one sample of the ratio. The steps are the ones each override replaces (the
head-with-body write of uvicorn's protocol was measured here too, as two ``send()``s
on a loopback TCP connection against one through the holder: it did not pay and
was removed, bench/README.md):

* ``BodyRequest``: ``await request.body()`` of a PATCH's request (its headers, one
  ``http.request`` message), against Litestar's ``Request``.
* ``SuccessResponse``: ``ok(...)`` sent to an ASGI ``send``, against the same body
  through a Litestar ``Response`` and ``to_asgi_response`` (bench/variant.py).
* ``_Server.in_room`` (a read of python-socketio's ``manager.rooms``): whether a
  socket is in a room, on a node with ``IN_ROOM_SOCKETS`` sockets, against asking
  ``AsyncServer.rooms(sid)`` (which walks every room of the namespace).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar, Request, patch

from bench.variant import through_litestar
from roomcast.gateway.server import Gateway
from roomcast.http.requests import BodyRequest
from roomcast.http.responses import ok

Step = Callable[[], Awaitable[None]]

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


IN_ROOM_SOCKETS = 1000
"""P5's reconnect storm size: each socket has a room of its own (its sid)."""


async def in_room(blocks: int, per_block: int) -> list[tuple[float, float]]:
    gateway = Gateway()
    manager = gateway.sio.manager
    sids = [await manager.connect(f"eio{i}", "/") for i in range(IN_ROOM_SOCKETS)]
    for sid in sids:
        await manager.enter_room(sid, "/", "room:bench")
    sid = sids[len(sids) // 2]

    async def ours() -> None:
        gateway.sio.in_room(sid, "room:bench")

    async def theirs() -> None:
        _ = "room:bench" in gateway.sio.rooms(sid)

    # rooms(sid) is O(sockets): fewer calls per block keep a block's time alike.
    return await timed_pairs(ours, theirs, blocks=blocks, per_block=max(1, per_block // 20))


STEPS: dict[str, Callable[[int, int], Awaitable[list[tuple[float, float]]]]] = {
    "no-body-request": body_request,
    "no-success-bypass": success_response,
    "no-in-room": in_room,
}
