"""Who is online in which room: the presence state behind ``presence:*``.

Presence is ephemeral: it is never written to the log and is rebuilt by the
sockets themselves (a restarted node starts empty and its clients resubscribe).
A user is online in a room while at least one of their sockets is subscribed to
it; several tabs count once.

The handlers (``gateway/live.py``) only talk to the ``PresenceStore`` protocol:
``MemoryPresence`` without Redis, ``redis_presence.RedisPresence`` (shared by
every node) with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import msgspec

from roomcast.domain.state import UserRef

__all__ = ["MemoryPresence", "OnlineUser", "PresenceStore"]


class OnlineUser(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One entry of ``presence:get_online``'s ``users``."""

    id: str
    name: str
    avatar: str | None = None
    connected_at: datetime
    """When the user's first socket still in the room subscribed to it."""


class PresenceStore(Protocol):
    """Which sockets of which users are subscribed to which rooms.

    Every method is a coroutine so that an implementation may do I/O. ``join``
    and ``leave`` report the transitions the handlers broadcast: a user's first
    socket in a room (online) and their last one leaving it (offline).
    """

    async def join(self, room_id: str, sid: str, user: UserRef, at: datetime) -> bool:
        """Record ``sid`` (of ``user``) in the room; True if the user was not online there."""
        ...

    async def leave(self, room_id: str, sid: str) -> UserRef | None:
        """Forget ``sid`` in the room; the user if that was their last socket there."""
        ...

    async def leave_all(self, sid: str) -> list[tuple[str, UserRef]]:
        """Forget ``sid`` everywhere (it disconnected); ``(room_id, user)`` that went offline."""
        ...

    async def is_in(self, room_id: str, sid: str) -> bool:
        """Whether ``sid`` is subscribed to the room (as far as presence knows)."""
        ...

    async def online(self, room_id: str) -> list[OnlineUser]:
        """The users online in the room, the earliest connected first."""
        ...


@dataclass
class _Here:
    user: UserRef
    since: datetime
    sids: dict[str, datetime] = field(default_factory=dict)
    """Each socket of the user in the room, with the time it subscribed."""


class MemoryPresence:
    """``PresenceStore`` in this process's memory: O(1) per transition."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, _Here]] = {}
        self._sockets: dict[str, dict[str, str]] = {}
        """sid → room_id → user_id (to undo a socket's entries when it disconnects)."""

    async def join(self, room_id: str, sid: str, user: UserRef, at: datetime) -> bool:
        users = self._rooms.setdefault(room_id, {})
        here = users.get(user.id)
        first = here is None
        if here is None:
            here = users[user.id] = _Here(user=user, since=at)
        here.sids.setdefault(sid, at)
        self._sockets.setdefault(sid, {})[room_id] = user.id
        return first

    async def leave(self, room_id: str, sid: str) -> UserRef | None:
        rooms = self._sockets.get(sid)
        user_id = rooms.pop(room_id, None) if rooms is not None else None
        if rooms is not None and not rooms:
            del self._sockets[sid]
        if user_id is None:
            return None
        users = self._rooms[room_id]
        here = users[user_id]
        del here.sids[sid]
        if here.sids:
            # connectedAt follows the sockets that remain, not one that left.
            here.since = min(here.sids.values())
            return None
        del users[user_id]
        if not users:
            del self._rooms[room_id]
        return here.user

    async def leave_all(self, sid: str) -> list[tuple[str, UserRef]]:
        gone: list[tuple[str, UserRef]] = []
        for room_id in list(self._sockets.get(sid, {})):
            user = await self.leave(room_id, sid)
            if user is not None:
                gone.append((room_id, user))
        return gone

    async def is_in(self, room_id: str, sid: str) -> bool:
        return room_id in self._sockets.get(sid, {})

    def rooms_of(self, sid: str) -> list[str]:
        """The rooms ``sid`` is in, as far as presence knows."""
        return list(self._sockets.get(sid, {}))

    async def online(self, room_id: str) -> list[OnlineUser]:
        users = sorted(self._rooms.get(room_id, {}).values(), key=lambda h: (h.since, h.user.id))
        return [
            OnlineUser(id=h.user.id, name=h.user.name, avatar=h.user.avatar, connected_at=h.since)
            for h in users
        ]
