"""Operator endpoints: ``GET /metrics`` (Prometheus) and ``GET /api/admin/stats``.

``/metrics`` needs no token, like ``/health``: Prometheus scrapes it from inside
the network, and it carries no user or room ids (no per-room labels), only
counts. Keep it off the public internet at the load balancer
(docs/operations.md). Per-room figures are in ``/api/admin/stats``, behind the
``admin`` role: the answering node's, and under ``cluster`` every live node's
(``gateway/cluster_stats.py``).
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from roomcast.domain.errors import ErrorCode
from roomcast.http.deps import Admin, ClusterStats, NodeMetrics, NodeStats
from roomcast.http.openapi import ADMIN, AUTHENTICATED, NONE, answers
from roomcast.http.responses import SuccessResponse, ok
from roomcast.metrics import CONTENT_TYPE

__all__ = ["admin_stats", "metrics"]


@get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics (text exposition format)",
    opt=answers(
        {ErrorCode.INVALID_PAYLOAD, ErrorCode.NOT_FOUND},
        text=True,
        media_type=CONTENT_TYPE,
        security=NONE,
    ),
)
async def metrics(node_metrics: NodeMetrics) -> Response[bytes]:
    return Response(content=await node_metrics.render(), media_type=CONTENT_TYPE)


@get(
    "/api/admin/stats",
    tags=["operations"],
    summary="Connections, rooms and subscribers per room: this node's and every node's (admin)",
    opt=answers(AUTHENTICATED | {ErrorCode.PERMISSION_DENIED}, data=dict[str, Any], security=ADMIN),
)
async def admin_stats(
    admin: Admin, node_stats: NodeStats, cluster_stats: ClusterStats
) -> SuccessResponse:
    data = dict(node_stats())
    if cluster_stats is not None:
        data["cluster"] = await cluster_stats()
    return ok(data)
