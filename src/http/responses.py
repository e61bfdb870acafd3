"""The success envelope as a response: every route's 2xx goes through here."""

from __future__ import annotations

from collections.abc import Mapping

from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

from roomcast import wire

__all__ = ["SuccessResponse", "ok"]

_JSON = (b"content-type", b"application/json")


class SuccessResponse(ASGIResponse):
    """An encoded body with its few headers, sent as it is.

    A Litestar ``Response`` becomes an ``ASGIResponse`` on every request, merging
    the headers and cookies of layers we never set: ~5 % of a command's CPU (P1,
    bench/README.md). Handlers return this instead; being an ``ASGIResponse``,
    Litestar sends it unchanged and documents it in OpenAPI as such.
    """

    def __init__(  # ASGIResponse.__init__ is what this skips
        self, body: bytes, status_code: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.body = body
        self.status_code = status_code
        self._raw_headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": self._raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


def ok(
    data: object,
    *,
    etag: int | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> SuccessResponse:
    """``{"success": true, "data": data}``; ``etag`` is a stream version (``ETag: "7"``)."""
    body = wire.encode(wire.success(data))
    raw = [_JSON, (b"content-length", str(len(body)).encode())]
    if etag is not None:
        raw.append((b"etag", f'"{etag}"'.encode()))
    for name, value in (headers or {}).items():
        raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return SuccessResponse(body, status_code, raw)
