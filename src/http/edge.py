"""ASGI guard in front of the REST routes: what no route may receive, refused in the envelope.

Litestar validates each route's parameters, but some input got through to the
store and came back as a 500: a NUL byte in a path id (PostgreSQL refuses it in
text), an integer past 64 bits (``?after=9223372036854775808``), a lenient
integer (``after=1e3`` read as 1000). Here, before any route runs:

* the path and every query value: no control characters, bounded length;
* the integer query parameters: plain decimal digits within a ``bigint``;
* a request with a body: ``Content-Type`` must be JSON (the routes parse JSON only),
  except on ``ANY_CONTENT_TYPE`` (sign-in and refresh, which seed 003 posts untyped).

Each refusal is INVALID_PAYLOAD in the protocol's envelope, with the status from
the one table (``roomcast.http.errors.STATUS``). The Socket.IO endpoint is left to
engine.io (its polling transport posts ``text/plain``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from litestar.types import ASGIApp, Receive, Scope, Send

from roomcast import wire
from roomcast.domain.errors import ErrorCode
from roomcast.http.errors import STATUS

__all__ = ["ANY_CONTENT_TYPE", "INTEGER_QUERY", "EdgeGuard"]

INTEGER_QUERY = frozenset({"after", "limit", "before", "afterSeq"})
"""Query parameters that are integers on every route that takes them."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"\d{1,19}")
_MAX_BIGINT = 2**63 - 1
_MAX_PATH = 2048
_MAX_QUERY_VALUE = 2048
_JSON = re.compile(rb"\s*application/([\w.+-]+\+)?json\s*(;.*)?", re.IGNORECASE)
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANY_CONTENT_TYPE = frozenset({"/api/auth/token", "/api/auth/refresh"})
"""Routes that read their JSON body whatever its Content-Type (``http/signin.py``):
seed 003's refresh ``fetch`` sends none, so browsers label it ``text/plain``."""


class EdgeGuard:
    def __init__(self, app: ASGIApp, *, socket_path: str = "/socket.io") -> None:
        self.app = app
        self._socket_path = socket_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(self._socket_path):  # type: ignore[comparison-overlap]
            refusal = refuse(scope)
            if refusal is not None:
                await _answer(send, *refusal)
                return
        await self.app(scope, receive, send)


def refuse(scope: Any) -> tuple[str, dict[str, object]] | None:
    """Why this request is refused at the edge (message, details), or None."""
    path: str = scope.get("path", "")
    if len(path) > _MAX_PATH:
        return f"the path may be at most {_MAX_PATH} characters", {"source": "path"}
    if _CONTROL.search(path):
        return "the path contains a control character", {"source": "path"}
    query = scope.get("query_string", b"")
    if query:
        try:
            text = query.decode("ascii")
        except UnicodeDecodeError:
            return "the query string must be percent-encoded ASCII", {"source": "query"}
        for name, value in parse_qsl(text, keep_blank_values=True, errors="replace"):
            if len(value) > _MAX_QUERY_VALUE or _CONTROL.search(name) or _CONTROL.search(value):
                return "a query parameter holds a control character or is too long", {
                    "source": "query",
                    "key": name[:100],
                }
            if name in INTEGER_QUERY and not _bigint(value):
                return f"{name} must be a non-negative integer in decimal digits", {
                    "source": "query",
                    "key": name,
                }
    if (
        scope.get("method") in _METHODS_WITH_BODY
        and path not in ANY_CONTENT_TYPE
        and _has_body(scope)
    ):
        content_type = _header(scope, b"content-type")
        if content_type is None or not _JSON.fullmatch(content_type):
            return "a request body must be JSON (Content-Type: application/json)", {
                "header": "Content-Type"
            }
    return None


def _bigint(value: str) -> bool:
    return _DIGITS.fullmatch(value) is not None and int(value) <= _MAX_BIGINT


def _has_body(scope: Any) -> bool:
    length = _header(scope, b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return _header(scope, b"transfer-encoding") is not None


def _header(scope: Any, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


async def _answer(send: Send, message: str, details: dict[str, object]) -> None:
    code = ErrorCode.INVALID_PAYLOAD
    body = wire.encode(
        wire.Failure(error=wire.ErrorBody(code=code, message=message, details=details))
    )
    start: Any = {
        "type": "http.response.start",
        "status": STATUS[code],
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    end: Any = {"type": "http.response.body", "body": body}
    await send(start)
    await send(end)
