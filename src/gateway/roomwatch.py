"""Client managers that report every socket leaving a room.

A socket leaves a room by ``room:unsubscribe``, by a failed subscribe, or by
eviction (``delivery.LocalDelivery.evict_after``: its user's ``participant:left``,
or ``room:deleted``). All of them go through the manager's ``leave_room``, so
presence and typing hook in there rather than in each path. Disconnects do not
(python-socketio drops the socket's rooms wholesale); the gateway's disconnect
handler covers those.
"""

from __future__ import annotations

import asyncio
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

    It also remembers every Redis client python-socketio opens (one for the
    first publish, another for the listener, more after reconnects; each
    replaces the last in ``self.redis``) so ``close`` can close them all.
    """

    def _redis_connect(self) -> None:
        super()._redis_connect()
        self._clients: list[Any] = [*getattr(self, "_clients", ()), self.redis]

    async def close(self) -> None:
        """Stop listening and close every Redis client; for shutdown."""
        listener = getattr(self, "thread", None)
        if isinstance(listener, asyncio.Task):
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        for client in getattr(self, "_clients", ()):
            await client.aclose()
        self._clients = []
