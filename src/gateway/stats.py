"""This node's connections and room subscriptions, read from state that already exists.

Nothing is counted here: sockets come from the gateway's ``Registry`` and room
membership from python-socketio's manager (``manager.rooms``), which is the
truth about who receives a room's broadcasts on this node. Read by the admin
stats endpoint and by ``/metrics`` (through ``bootstrap``).
"""

from __future__ import annotations

import msgspec

from roomcast.gateway.delivery import Registry

__all__ = ["ConnectionStats", "connection_stats"]

_ROOM_PREFIX = "room:"


class ConnectionStats(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    connections: int
    """Socket.IO connections on this node."""
    users: int
    """Distinct users among them."""
    rooms: int
    """Rooms with at least one subscribed socket on this node."""
    subscribers: dict[str, int]
    """Room id → sockets subscribed to it on this node."""


def connection_stats(registry: Registry, manager_rooms: object) -> ConnectionStats:
    """``manager_rooms``: ``sio.manager.rooms`` (namespace → room → {sid: eio_sid})."""
    subscribers: dict[str, int] = {}
    namespace = manager_rooms.get("/", {}) if isinstance(manager_rooms, dict) else {}
    for name, sids in namespace.items():
        if isinstance(name, str) and name.startswith(_ROOM_PREFIX) and sids:
            subscribers[name.removeprefix(_ROOM_PREFIX)] = len(sids)
    return ConnectionStats(
        connections=len(registry.users),
        users=len(registry.sids_of_user),
        rooms=len(subscribers),
        subscribers=dict(sorted(subscribers.items())),
    )
