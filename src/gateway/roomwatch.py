"""Client managers that report every socket leaving a room.

A socket leaves a room by ``room:unsubscribe``, by a failed subscribe, or by
eviction (``delivery.LocalDelivery.evict_after``: its user's ``participant:left``,
or ``room:deleted``). All of them go through the manager's ``leave_room``, so
presence and typing hook in there rather than in each path. Disconnects do not
(python-socketio drops the socket's rooms wholesale); the gateway's disconnect
handler covers those.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from roomcast.gateway.delivery import LocalDelivery, RedisDelivery

__all__ = ["WatchedLocal", "WatchedRedis"]

OnLeave = Callable[[str, str], Awaitable[None]]
"""``on_leave(sid, room)``, after the socket has left the room."""


class _LeaveHook:
    on_leave: OnLeave | None = None

    async def leave_room(self, sid: str, namespace: str, room: str) -> Any:
        result = await super().leave_room(sid, namespace, room)  # type: ignore[misc]
        if self.on_leave is not None:
            await self.on_leave(sid, room)
        return result


class WatchedLocal(_LeaveHook, LocalDelivery):
    """``LocalDelivery`` that calls ``on_leave`` whenever a local socket leaves a room."""


class WatchedRedis(_LeaveHook, RedisDelivery):
    """``RedisDelivery`` that calls ``on_leave`` whenever a local socket leaves a room.

    Only this node's sockets are reported (another node's leave requests arrive
    through Redis and are applied below this hook): presence is per node.
    """
