"""GET /health: is this node able to serve? (database reachability and round-trip time,
Redis when configured; only the database makes it a 503)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import MediaType, Response, get

from roomcast import __version__
from roomcast.domain.errors import ErrorCode, ServiceUnavailable
from roomcast.http.deps import Node, Store
from roomcast.http.openapi import NONE, answers

__all__ = ["health"]


class Check(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


class Backlog(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    depth: int
    oldest_seconds: float


class ReactionBacklog(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    queued: int
    dead_letters: int


class Health(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: str
    version: str
    checks: dict[str, Check]
    node: dict[str, object]
    """This node's relay (active publisher or standby, lag) and sockets."""
    outbox: Backlog | None = None
    """What waits for a relay, database-wide: the lag a client would see now, even
    when this node's relay is a standby or its last batch is long past."""
    reactions: ReactionBacklog | None = None
    """Reactions waiting to run and dead letters (``roomcast deadletter``), database-wide."""


@get(
    "/health",
    tags=["operations"],
    summary="Liveness and dependencies; 503 when degraded",
    opt=answers({ErrorCode.INVALID_PAYLOAD}, body=Health, also=(503,), security=NONE),
)
async def health(store: Store, node: Node) -> Response[Any]:
    started = time.perf_counter()
    backlog = None
    reactions = None
    try:
        await store.ping()
        database = Check(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))
        depth, oldest = await store.outbox_backlog()
        backlog = Backlog(depth=depth, oldest_seconds=round(oldest, 3))
        queued, dead = await store.reaction_backlog()
        reactions = ReactionBacklog(queued=queued, dead_letters=dead)
    except ServiceUnavailable as exc:
        database = Check(ok=False, error=exc.message)
    checks = {"database": database}
    redis = node.get("redis")
    if isinstance(redis, dict) and "ok" in redis:
        # Redis down degrades the node but does not take it out of a load balancer:
        # its sockets are still served, and what Redis drops is refilled from the log.
        error = None if redis["ok"] else str(redis.get("lastError"))
        checks["redis"] = Check(ok=bool(redis["ok"]), error=error)
    if reactions is not None and reactions.dead_letters:
        # Reactions that failed every attempt wait for an operator.
        checks["reactions"] = Check(
            ok=False, error=f"{reactions.dead_letters} dead letter(s): roomcast deadletter list"
        )
    body = Health(
        status="ok" if all(c.ok for c in checks.values()) else "degraded",
        version=__version__,
        checks=checks,
        node=dict(node),
        outbox=backlog,
        reactions=reactions,
    )
    return Response(
        content=msgspec.json.encode(body),
        status_code=200 if database.ok else 503,
        media_type=MediaType.JSON,
        headers={} if database.ok else {"Retry-After": "1"},
    )
