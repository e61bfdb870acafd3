"""The app's request class: Litestar's ``Request``, whose body is read in one plain loop.

Litestar reads a body through an async generator, after parsing every header
into a ``Headers`` object for ``Content-Length``: ≈42k instructions per
command of ≈860k (callgrind, P1 at concurrency 32; bench/README.md), for a
body that uvicorn has already handed over whole. Here the same limits are kept
(``request_max_body_size``: an announced length over it, or more bytes than
it, is ``RequestEntityTooLarge``, 413 ``PAYLOAD_TOO_LARGE``) and the body is
cached where Litestar caches it, so ``json()``, ``stream()`` and the
idempotency fingerprint all see the same bytes.

A body holding a NUL (the JSON escape ``\\u0000``) in any string is refused with
INVALID_PAYLOAD: PostgreSQL refuses NUL in text and in ``jsonb``, so such a room
name or answer came back as a 500 from the store (found by schemathesis).
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.exceptions import InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import Empty

from roomcast.domain.errors import InvalidPayload
from roomcast.http.headers import header

__all__ = ["BodyRequest", "holds_nul"]

_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""A ``\\u0000`` escape, not itself escaped (``\\\\u0000`` is a backslash, then text)."""


def holds_nul(body: bytes) -> bool:
    """Whether a JSON text holds a NUL character in one of its strings."""
    return b"\\u0000" in body and _NUL.search(body) is not None


class BodyRequest(Request[Any, Any, Any]):
    async def body(self) -> bytes:
        body = self._body
        if body is Empty:
            body = self._connection_state.body
            if body is Empty:
                body = self._connection_state.body = await self._read_body()
                if holds_nul(body):
                    raise InvalidPayload(
                        "a request body may not hold a NUL character (\\u0000)",
                        {"source": "body"},
                    )
            self._body = body
        return body

    async def _read_body(self) -> bytes:
        limit = self.route_handler.resolve_request_max_body_size()
        announced = header(self.scope, b"content-length")
        if (
            limit is not None
            and announced is not None
            and announced.isdigit()
            and int(announced) > limit
        ):
            raise RequestEntityTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":  # http.disconnect
                raise InternalServerException("client disconnected prematurely")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise RequestEntityTooLarge
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self.is_connected = False
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
