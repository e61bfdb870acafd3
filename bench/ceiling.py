"""P1's ceiling: the same PATCH on Litestar under uvicorn, answered without any work.

No authentication, no domain, no database: the route decodes the body into a
msgspec Struct and answers a small JSON envelope. Any command path on this
stack in one process does strictly more, so its throughput bounds ours from
above; its ratio to the raw asyncpg append says how much of P1's target the
HTTP stack alone leaves reachable on this machine.
"""

from __future__ import annotations

import argparse

import msgspec
import uvicorn
from litestar import Litestar, Response, get, patch

from roomcast import gctune
from roomcast.cli import uvicorn_options
from roomcast.config import Settings


class Rename(msgspec.Struct):
    name: str


@patch("/api/rooms/{room_id:str}")
async def rename(room_id: str, data: Rename) -> Response[bytes]:
    body = msgspec.json.encode({"success": True, "data": {"roomId": room_id, "name": data.name}})
    return Response(body, media_type="application/json")


@get("/ready")
async def ready() -> str:
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings()  # the same uvicorn and garbage-collector settings as `roomcast serve`
    gctune.tune(settings.gc_threshold)
    app = Litestar([rename, ready], openapi_config=None)
    gctune.freeze_startup()
    uvicorn.run(app, host="127.0.0.1", port=args.port, **uvicorn_options(settings))


if __name__ == "__main__":
    main()
