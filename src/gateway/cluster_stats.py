"""Connection stats of every node, shared through Redis (``/api/admin/stats``, ``/ops``).

Each node publishes its ``ConnectionStats`` every third of ``ttl`` to a key of
its own, ``roomcast:stats:node:<instance>``, that expires after ``ttl``, and
names itself in the sorted set ``roomcast:stats:nodes`` (score: when its entry
expires). A reader takes the entries of the nodes whose score is in the future;
a node that crashed stops publishing and drops out within ``ttl`` seconds
(``ROOMCAST_STATS_TTL``). A node that stops cleanly removes itself at once.

The answering node counts itself from its live state, not from its last entry.
Users are summed per node: a user with sockets on two nodes counts on each
(knowing who is on which node would mean publishing every user id).

Redis trouble never fails the endpoint: the answer is then this node alone,
marked ``complete: false``. Without ``REDIS_URL`` the cluster is this node.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from roomcast.gateway.stats import ConnectionStats

__all__ = ["ClusterStats", "NodeEntry", "cluster_view"]

log = structlog.get_logger("roomcast.stats")

NODES = "roomcast:stats:nodes"


def _node_key(instance: str) -> str:
    return f"roomcast:stats:node:{instance}"


class NodeEntry(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One node's counts as published (``ConnectionStats`` plus who and when)."""

    node_id: str
    instance: str
    published_at: float
    """Unix seconds."""
    stats: ConnectionStats


_decoder = msgspec.json.Decoder(NodeEntry)


def cluster_view(entries: list[NodeEntry], *, complete: bool, now: float) -> dict[str, object]:
    """The JSON-ready ``cluster`` part of the admin stats: totals and one line per node."""
    subscribers: dict[str, int] = {}
    for entry in entries:
        for room, count in entry.stats.subscribers.items():
            subscribers[room] = subscribers.get(room, 0) + count
    return {
        "complete": complete,
        "connections": sum(e.stats.connections for e in entries),
        "users": sum(e.stats.users for e in entries),
        "rooms": len(subscribers),
        "subscribers": dict(sorted(subscribers.items())),
        "nodes": [
            {
                "nodeId": e.node_id,
                "instance": e.instance,
                "connections": e.stats.connections,
                "users": e.stats.users,
                "rooms": e.stats.rooms,
                "ageSeconds": round(max(now - e.published_at, 0.0), 3),
            }
            for e in sorted(entries, key=lambda e: (e.node_id, e.instance))
        ],
    }


class ClusterStats:
    def __init__(
        self,
        url: str | None,
        node_id: str,
        sample: Callable[[], ConnectionStats],
        *,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``url`` None: no Redis, the cluster is this node. ``sample``: this node's
        counts now (``connection_stats`` over the gateway's state)."""
        self.node_id = node_id
        self.instance = f"{node_id}-{uuid.uuid4().hex[:8]}"
        """This process's name among the nodes (unique even if two share a node id)."""
        self.ttl = ttl
        self._sample = sample
        self._clock = clock
        self._redis: Any = (
            aioredis.Redis.from_url(
                url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
            )
            if url
            else None
        )

    def own(self) -> NodeEntry:
        return NodeEntry(
            node_id=self.node_id,
            instance=self.instance,
            published_at=self._clock(),
            stats=self._sample(),
        )

    async def publish(self) -> None:
        """Put this node's counts in Redis for ``ttl`` seconds."""
        entry = self.own()
        expires = entry.published_at + self.ttl
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(
                _node_key(self.instance), msgspec.json.encode(entry), px=round(self.ttl * 1000)
            )
            pipe.zadd(NODES, {self.instance: expires})
            pipe.zremrangebyscore(NODES, "-inf", entry.published_at)  # crashed nodes' names
            await pipe.execute()

    async def run(self) -> None:
        """Publish every third of ``ttl`` until cancelled; then leave at once."""
        if self._redis is None:
            return
        try:
            while True:
                try:
                    await self.publish()
                except Exception as exc:  # Redis down: the next round tries again
                    log.warning("stats_redis_failed", error=repr(exc))
                await asyncio.sleep(self.ttl / 3)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._leave())

    async def _leave(self) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(_node_key(self.instance))
            pipe.zrem(NODES, self.instance)
            await pipe.execute()

    async def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    async def view(self) -> dict[str, object]:
        """Every live node's counts, this node's fresh; this node alone if Redis fails."""
        own = self.own()
        if self._redis is None:
            return cluster_view([own], complete=True, now=own.published_at)
        try:
            instances = await self._redis.zrangebyscore(NODES, own.published_at, "+inf")
            others = [name.decode() if isinstance(name, bytes) else str(name) for name in instances]
            others = [name for name in others if name != self.instance]
            values = await self._redis.mget([_node_key(n) for n in others]) if others else []
        except Exception as exc:
            log.warning("stats_redis_failed", error=repr(exc))
            return cluster_view([own], complete=False, now=own.published_at)
        entries = [own]
        for value in values:
            if value is None:  # expired between the two reads
                continue
            try:
                entries.append(_decoder.decode(value))
            except msgspec.DecodeError:
                log.warning("stats_entry_unreadable")
        return cluster_view(entries, complete=True, now=own.published_at)
