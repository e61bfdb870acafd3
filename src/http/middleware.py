"""ASGI middleware: a request id for every request, bound to the logs, and one access line."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from roomcast import logfields
from roomcast.http.headers import header

__all__ = ["RequestContext"]

log = structlog.get_logger("roomcast.http")

_ids = random.Random()
"""The request ids' own generator: the module's shared one is seeded by whoever calls
``random.seed`` in the process (hypothesis does, per example), and then every request
would get the same id. Reseeded in a forked child, like the shared one."""
os.register_at_fork(after_in_child=_ids.seed)


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await self.app(scope, receive, send)
            return
        # Unique, not secret: a uuid4 would cost a getrandom() system call per request.
        request_id = _incoming_id(scope) or f"{_ids.getrandbits(128):032x}"
        raw_id = request_id.encode()
        started = time.perf_counter()
        status = 500
        logged = False

        def finished() -> None:
            nonlocal logged
            logged = True
            log.info(
                "request_finished",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # The message is the sender's own, built for this one call: amended in place.
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", raw_id)]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Before the last byte leaves: whoever has the whole response can read its line.
                finished()
            await send(message)

        with logfields.request_scope(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if not logged:
                    finished()


def _incoming_id(scope: Any) -> str | None:
    value = header(scope, b"x-request-id")
    if value is None:
        return None
    text = value[:128]
    return text if text.isprintable() else None
