"""The baseline server: bare python-socketio on uvicorn; no database, no roomcast gateway.

It speaks just enough of roomcast's protocol for the same client processes to
use it: CONNECT (any auth), ``room:subscribe`` (join the one room; with
``lastSeq``, send what it holds after it from memory first) with the same ack
shape. Events are the same payloads the relay sends (a real stored event's JSON
with ``eventId`` and ``seq`` spliced in by ``roomcast.outbox.codec``), built
before the clock starts, as the relay's are (encoded when they were committed).
It uses roomcast's msgspec JSON module, as the real gateway does, so the payload
is encoded the same way in both.

Control over plain HTTP on the same port:

* ``GET /ready``: 200 once serving.
* ``POST /emit`` ``{"count", "rate", "template"}``: emit ``count`` events to the
  room, awaiting each (as the relay does), at ``rate``/s (0: as fast as it can).
  Answers, per event, when its emit started as an offset from its payload's
  ``timestamp`` (the "commit" of this server, for P2's latency).
* ``POST /history`` ``{"count", "template"}``: add events without emitting them
  (clients that reconnect with ``lastSeq`` are then behind).

Run by the harness as ``python -m bench.bare --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import socketio
import uvicorn

from roomcast import gctune
from roomcast.cli import uvicorn_options
from roomcast.config import Settings
from roomcast.gateway import jsoncodec
from roomcast.ids import uuid7
from roomcast.outbox.codec import wire_payload

ROOM = "bench"
EVENT = "room:updated"


class Bare:
    def __init__(self) -> None:
        # The same server options as roomcast.gateway.server.Gateway, default manager.
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            json=jsoncodec,
            cors_allowed_origins=[],
            ping_interval=25,
            ping_timeout=20,
            max_http_buffer_size=64 * 1024,
            logger=False,
            engineio_logger=False,
        )
        self.history: list[tuple[str, msgspec.Raw]] = []
        self.sio.on("connect", self._connect)
        self.sio.on("room:subscribe", self._subscribe)
        self.app = socketio.ASGIApp(self.sio, other_asgi_app=self._control)

    async def _connect(self, sid: str, environ: Any, auth: Any = None) -> None:
        return None

    async def _subscribe(self, sid: str, data: Any) -> Any:
        room_id = data.get("roomId") if isinstance(data, dict) else None
        last = data.get("lastSeq") if isinstance(data, dict) else None
        await self.sio.enter_room(sid, ROOM)
        head = len(self.history)
        if isinstance(last, int):
            for event, payload in self.history[last:head]:
                await self.sio.emit(event, payload, to=sid)
        await self.sio.emit("room:subscribed", {"roomId": room_id, "headSeq": head}, to=sid)
        return {"success": True, "data": {"roomId": room_id, "headSeq": head}}

    def _payloads(self, template: str, count: int) -> tuple[list[msgspec.Raw], float]:
        data = msgspec.json.decode(template)
        stamp = datetime.now(UTC)
        data["timestamp"] = stamp
        encoded = msgspec.json.encode(data)
        first = len(self.history) + 1
        out = [msgspec.Raw(wire_payload(uuid7(), first + i, encoded)) for i in range(count)]
        return out, stamp.timestamp()

    async def emit(self, count: int, rate: float, template: str) -> dict[str, Any]:
        payloads, stamp = self._payloads(template, count)  # before the clock starts
        first_seq = len(self.history) + 1
        offsets = []
        started_wall = time.time()
        started = time.perf_counter()
        for i, payload in enumerate(payloads):
            if rate:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            offsets.append(time.time() - stamp)
            self.history.append((EVENT, payload))
            await self.sio.emit(EVENT, payload, room=ROOM)
        return {
            "t_start": started_wall,
            "t_end": time.time(),
            "head": len(self.history),
            "first_seq": first_seq,
            "offsets": offsets,
        }

    def add_history(self, count: int, template: str) -> dict[str, Any]:
        payloads, _ = self._payloads(template, count)
        self.history.extend((EVENT, payload) for payload in payloads)
        return {"head": len(self.history)}

    async def _control(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = msgspec.json.decode(body) if body else {}
        status = 200
        answer: dict[str, Any] = {}
        match scope["path"]:
            case "/ready":
                answer = {"ready": True}
            case "/emit":
                answer = await self.emit(request["count"], request["rate"], request["template"])
            case "/history":
                answer = self.add_history(request["count"], request["template"])
            case _:
                status, answer = 404, {"error": "not found"}
        content = msgspec.json.encode(answer)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same uvicorn and garbage-collector settings as `roomcast serve`.
    settings = Settings()
    gctune.tune(settings.gc_threshold)
    app = Bare().app
    gctune.freeze_startup()
    uvicorn.run(app, host="127.0.0.1", port=args.port, lifespan="off", **uvicorn_options(settings))


if __name__ == "__main__":
    main()
