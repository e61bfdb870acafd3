"""Prometheus metrics: a few process-wide counters, and gauges sampled at scrape time.

Counters count what happens in one place (a command decided, events appended,
a broadcast emitted, a replay served): one ``.inc()`` where it happens. They are
created with ``registry=None`` and registered into each app's own
``CollectorRegistry`` (``Metrics``), so several apps in one process (the tests)
never collide on prometheus-client's global registry.

Everything that is already known as state (the relay's stats, this node's
sockets and rooms, the outbox's backlog) is not counted again: ``Metrics.render``
samples it at scrape time through the ``sample`` callable that ``bootstrap``
wires, and exposes it as gauges (or counters, for the relay's running total).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = [
    "APPEND_BATCH",
    "BROADCASTS",
    "COMMANDS",
    "CONTENT_TYPE",
    "EVENTS_APPENDED",
    "REPLAYED_EVENTS",
    "REPLAYS",
    "Metrics",
    "NodeSample",
    "count_command",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format, version 0.0.4."""

COMMANDS = Counter(
    "roomcast_commands",
    "Commands run by this process, by command type and outcome "
    "(applied, unchanged, replayed, or the error code that refused it).",
    ["command", "outcome"],
    registry=None,
)
_command_children: dict[tuple[str, str], Any] = {}


def count_command(command: str, outcome: str) -> None:
    """``COMMANDS.labels(command, outcome).inc()``, with each labelled child looked up once
    (``labels`` validates and locks on every call: ~1 % of a command's CPU)."""
    child = _command_children.get((command, outcome))
    if child is None:
        child = _command_children[command, outcome] = COMMANDS.labels(command, outcome)
    child.inc()


EVENTS_APPENDED = Counter(
    "roomcast_events_appended",
    "Events appended to the log by this process.",
    registry=None,
)
APPEND_BATCH = Histogram(
    "roomcast_append_batch_size",
    "Appends written per transaction by group commit (1: alone; more: commands for "
    "different streams that were waiting together).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=None,
)
BROADCASTS = Counter(
    "roomcast_broadcasts",
    "Room broadcasts emitted by this node's gateway (each reaches the room's local sockets).",
    registry=None,
)
REPLAYS = Counter(
    "roomcast_replays",
    "Replays served from the log: on room:subscribe with missed events, and room:replay.",
    ["kind"],
    registry=None,
)

REPLAYED_EVENTS = Counter(
    "roomcast_replayed_events",
    "Events sent by room:subscribe replays, by where they were read: memory (this node's "
    "latest events of the room) or database.",
    ["source"],
    registry=None,
)

_COLLECTORS = (COMMANDS, EVENTS_APPENDED, APPEND_BATCH, BROADCASTS, REPLAYS, REPLAYED_EVENTS)


class NodeSample(msgspec.Struct, frozen=True, kw_only=True):
    """This node's state at one scrape; ``None`` where it could not be read."""

    relay_enabled: bool
    relay_active: bool = False
    relay_published: int = 0
    relay_lag_seconds: float = 0.0
    outbox_depth: int | None = None
    """Rows waiting in the outbox (whole database); None when the database is unreachable."""
    outbox_oldest_seconds: float | None = None
    socket_connections: int = 0
    socket_users: int = 0
    rooms: int = 0
    """Rooms with at least one subscribed socket on this node."""
    subscriptions: int = 0
    """(room, socket) pairs on this node."""
    database_up: bool = True
    relay_unacked: int = 0
    """Rows this node's relay keeps because Redis did not take their publish."""
    redis_up: bool | None = None
    """None without Redis."""
    reactions_queued: int | None = None
    dead_letters: int | None = None
    relay_partitions: tuple[int, ...] = ()
    """The partitions this node's relay publishes now."""
    relay_partition_count: int = 0
    relay_live: int = 0
    """Live relays of the database at this relay's last look."""


Sample = Callable[[], Awaitable[NodeSample]]


class Metrics:
    """One app's ``/metrics``: the process-wide counters and this node's sampled gauges."""

    def __init__(self, sample: Sample) -> None:
        self._sample = sample
        self._sampled: Sequence[Metric] = ()
        self._lock = asyncio.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        for counter in _COLLECTORS:
            self.registry.register(counter)
        self.registry.register(self)  # a Collector: it has collect()

    def collect(self) -> Iterator[Metric]:
        """prometheus-client's Collector protocol: the gauges of the current scrape."""
        return iter(self._sampled)

    async def render(self) -> bytes:
        """The exposition text; samples the node first (one scrape at a time)."""
        async with self._lock:
            self._sampled = _families(await self._sample())
            return generate_latest(self.registry)


def _families(s: NodeSample) -> list[Metric]:
    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, value=value)

    families: list[Metric] = [
        gauge(
            "roomcast_database_up",
            "1 if this node reached PostgreSQL at this scrape.",
            s.database_up,
        ),
        gauge(
            "roomcast_relay_enabled",
            "1 if this node runs a relay (ROOMCAST_RELAY).",
            s.relay_enabled,
        ),
        gauge(
            "roomcast_relay_active",
            "1 if this node's relay publishes (holds at least one partition; 0 on a standby).",
            s.relay_active,
        ),
        CounterMetricFamily(
            "roomcast_relay_published",
            "Events published by this node's relay since it started.",
            value=s.relay_published,
        ),
        gauge(
            "roomcast_relay_lag_seconds",
            "Commit-to-publish age of the oldest row in this relay's last batch.",
            s.relay_lag_seconds,
        ),
        gauge(
            "roomcast_socket_connections",
            "Socket.IO connections on this node.",
            s.socket_connections,
        ),
        gauge("roomcast_socket_users", "Distinct users connected to this node.", s.socket_users),
        gauge("roomcast_rooms", "Rooms with at least one subscribed socket on this node.", s.rooms),
        gauge(
            "roomcast_subscriptions",
            "Room subscriptions (room, socket) on this node.",
            s.subscriptions,
        ),
    ]
    families.append(
        gauge(
            "roomcast_relay_unacked",
            "Outbox rows this node's relay keeps because their publish did not reach Redis.",
            s.relay_unacked,
        )
    )
    if s.relay_enabled:
        families.append(_partitions(s))
        families.append(
            gauge(
                "roomcast_relay_live_relays",
                "Relays of this database sharing the partitions, at this relay's last look.",
                s.relay_live,
            )
        )
    if s.redis_up is not None:
        families.append(
            gauge(
                "roomcast_redis_up", "1 if this node publishes to and listens on Redis.", s.redis_up
            )
        )
    if s.reactions_queued is not None:
        families.append(
            gauge(
                "roomcast_reactions_queued",
                "Reactions waiting to run (the whole database's reaction queue).",
                s.reactions_queued,
            )
        )
    if s.dead_letters is not None:
        families.append(
            gauge(
                "roomcast_dead_letters",
                "Reactions that failed every attempt (roomcast deadletter list).",
                s.dead_letters,
            )
        )
    if s.outbox_depth is not None:
        families.append(
            gauge(
                "roomcast_outbox_depth",
                "Events committed but not yet published (the whole database's outbox).",
                s.outbox_depth,
            )
        )
    if s.outbox_oldest_seconds is not None:
        families.append(
            gauge(
                "roomcast_outbox_oldest_seconds",
                "Age of the oldest unpublished outbox row (0 when empty).",
                s.outbox_oldest_seconds,
            )
        )
    return families


def _partitions(s: NodeSample) -> GaugeMetricFamily:
    """One series per partition: 1 where this node's relay publishes it now."""
    family = GaugeMetricFamily(
        "roomcast_relay_partition_held",
        "1 if this node's relay holds the partition (publishes its rooms) now.",
        labels=["partition"],
    )
    held = set(s.relay_partitions)
    for k in range(s.relay_partition_count):
        family.add_metric([str(k)], 1 if k in held else 0)
    return family
