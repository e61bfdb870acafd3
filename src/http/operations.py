"""Operator endpoints: ``GET /metrics`` (Prometheus) and ``GET /api/admin/stats``.

``/metrics`` needs no token, like ``/health``: Prometheus scrapes it from inside
the network, and it carries no user or room ids (no per-room labels), only
counts. Keep it off the public internet at the load balancer
(docs/operations.md). Per-room figures are in ``/api/admin/stats``, behind the
``admin`` role: the answering node's, and under ``cluster`` every live node's
(``gateway/cluster_stats.py``).
"""

from __future__ import annotations

from litestar import Response, get

from roomcast.http.deps import Admin, ClusterStats, NodeMetrics, NodeStats
from roomcast.http.responses import SuccessResponse, ok
from roomcast.metrics import CONTENT_TYPE

__all__ = ["admin_stats", "metrics"]


@get("/metrics", tags=["operations"], summary="Prometheus metrics (text exposition format)")
async def metrics(node_metrics: NodeMetrics) -> Response[bytes]:
    return Response(content=await node_metrics.render(), media_type=CONTENT_TYPE)


@get(
    "/api/admin/stats",
    tags=["operations"],
    summary="Connections, rooms and subscribers per room: this node's and every node's (admin)",
)
async def admin_stats(
    admin: Admin, node_stats: NodeStats, cluster_stats: ClusterStats
) -> SuccessResponse:
    data = dict(node_stats())
    if cluster_stats is not None:
        data["cluster"] = await cluster_stats()
    return ok(data)
