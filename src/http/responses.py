"""The success envelope as a response: every route's 2xx goes through here."""

from __future__ import annotations

from collections.abc import Mapping

from litestar import MediaType, Response

from roomcast import wire

__all__ = ["ok"]


def ok(
    data: object,
    *,
    etag: int | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    """``{"success": true, "data": data}``; ``etag`` is a stream version (``ETag: "7"``)."""
    all_headers = dict(headers or {})
    if etag is not None:
        all_headers["ETag"] = f'"{etag}"'
    return Response(
        content=wire.encode(wire.success(data)),
        status_code=status_code,
        media_type=MediaType.JSON,
        headers=all_headers,
    )
