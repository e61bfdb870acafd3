"""Contract tests: the private parts of uvicorn, Litestar, python-socketio and engine.io
that roomcast overrides, each checked for what the override relies on.

Every test is named after the override it guards and fails with a message naming it
(``broken(...)``), so an upgrade that moves what an override stands on is caught here
and not in production. The overrides are listed in docs/architecture.md
(*Overridden private parts of the libraries*); the versions they were checked with are
the upper bounds in pyproject.toml.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from roomcast.cli import uvicorn_options
from roomcast.config import Settings

__all__ = ["broken", "serving"]


def broken(override: str, what: str) -> str:
    """The failure message: which override, and what it relied on that changed."""
    return (
        f"{override}: {what}. An upgrade changed what this override relies on; re-check it "
        "against the new library code (docs/architecture.md lists it) before raising the pin."
    )


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` on a real uvicorn in this event loop, with ``roomcast serve``'s options
    (BoundedHttpProtocol, the same WebSocket settings); yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", **uvicorn_options(Settings()))
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await server.shutdown(sockets=[sock])
        sock.close()
