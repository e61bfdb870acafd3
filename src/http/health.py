"""GET /health: is this node able to serve? (database reachability and round-trip time)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import MediaType, Response, get

from roomcast import __version__
from roomcast.domain.errors import ServiceUnavailable
from roomcast.http.deps import Node, Store

__all__ = ["health"]


class Check(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    version: str
    checks: dict[str, Check]
    node: dict[str, object]
    """This node's relay (active publisher or standby, lag) and sockets."""


@get("/health", tags=["operations"], summary="Liveness and dependencies; 503 when degraded")
async def health(store: Store, node: Node) -> Response[Any]:
    started = time.perf_counter()
    try:
        await store.ping()
        database = Check(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))
    except ServiceUnavailable as exc:
        database = Check(ok=False, error=exc.message)
    body = Health(
        status="ok" if database.ok else "degraded",
        version=__version__,
        checks={"database": database},
        node=dict(node),
    )
    return Response(
        content=msgspec.json.encode(body),
        status_code=200 if database.ok else 503,
        media_type=MediaType.JSON,
    )
