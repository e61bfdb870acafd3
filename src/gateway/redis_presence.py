"""Presence shared by every node through Redis (``PresenceStore``, used with ``REDIS_URL``).

Each node keeps its own sockets in memory (``MemoryPresence``: which of its
sockets are in which room, several tabs counting once) and writes one Redis
entry per (room, node, user) while that user has a socket of this node in the
room: hash ``roomcast:presence:<roomId>``, field ``<instance>\\t<userId>``,
value the user and since when. A user is online in a room while an entry of a
live node names them, so several tabs and several nodes count once: ``join``
says "online" only for the user's first entry among live nodes, ``leave``
"offline" only when the last one goes.

A node is live while its heartbeat in the sorted set ``roomcast:presence:nodes``
(score: when it expires, refreshed every third of ``ttl``) is in the future. A
node that crashed stops refreshing it: its users drop out of
``presence:get_online`` within ``ttl`` seconds (``ROOMCAST_PRESENCE_TTL``), and
its entries are deleted by the next reader. No offline notice is broadcast for
them (nobody is left who knew their sockets).

Redis trouble never fails a handler: each call falls back to this node's own
view (as without Redis) and logs ``presence_redis_failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
import structlog
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from roomcast.domain.state import UserRef
from roomcast.gateway.presence import MemoryPresence, OnlineUser

__all__ = ["RedisPresence"]

log = structlog.get_logger("roomcast.presence")

NODES = "roomcast:presence:nodes"
_SEP = "\t"


def _room_key(room_id: str) -> str:
    return f"roomcast:presence:{room_id}"


_entry_decoder = msgspec.json.Decoder(OnlineUser)


class RedisPresence:
    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        ttl: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.instance = f"{node_id}-{uuid.uuid4().hex[:8]}"
        """This process's name among the nodes (unique even if two share a node id)."""
        self.ttl = ttl
        self._clock = clock
        self._local = MemoryPresence()
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )

    # ------------------------------------------------------------ liveness

    async def heartbeat(self) -> None:
        await self._redis.zadd(NODES, {self.instance: self._clock() + self.ttl})

    async def run(self) -> None:
        """Refresh this node's heartbeat until cancelled; then leave the set."""
        try:
            while True:
                try:
                    await self.heartbeat()
                except Exception as exc:  # Redis down: the next beat tries again
                    log.warning("presence_redis_failed", error=repr(exc))
                await asyncio.sleep(self.ttl / 3)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._redis.zrem(NODES, self.instance))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def _live(self) -> set[str]:
        nodes = await self._redis.zrangebyscore(NODES, self._clock(), "+inf")
        return {n.decode() if isinstance(n, bytes) else n for n in nodes}

    async def _elsewhere(self, room_id: str, user_id: str) -> bool:
        """Whether a live node other than this one has an entry for the user in the room."""
        others = [n for n in await self._live() if n != self.instance]
        if not others:
            return False
        values = await self._redis.hmget(
            _room_key(room_id), [f"{n}{_SEP}{user_id}" for n in others]
        )
        return any(v is not None for v in values)

    # ------------------------------------------------------------ PresenceStore

    async def join(self, room_id: str, sid: str, user: UserRef, at: datetime) -> bool:
        if not await self._local.join(room_id, sid, user, at):
            return False  # another socket of the user on this node is there already
        entry = OnlineUser(id=user.id, name=user.name, avatar=user.avatar, connected_at=at)
        try:
            await self._redis.hset(
                _room_key(room_id), f"{self.instance}{_SEP}{user.id}", msgspec.json.encode(entry)
            )
            return not await self._elsewhere(room_id, user.id)
        except Exception as exc:
            log.warning("presence_redis_failed", error=repr(exc))
            return True

    async def leave(self, room_id: str, sid: str) -> UserRef | None:
        user = await self._local.leave(room_id, sid)
        if user is None:
            return None  # the user still has a socket of this node in the room
        try:
            await self._redis.hdel(_room_key(room_id), f"{self.instance}{_SEP}{user.id}")
            return None if await self._elsewhere(room_id, user.id) else user
        except Exception as exc:
            log.warning("presence_redis_failed", error=repr(exc))
            return user

    async def leave_all(self, sid: str) -> list[tuple[str, UserRef]]:
        gone: list[tuple[str, UserRef]] = []
        for room_id in self._local.rooms_of(sid):
            user = await self.leave(room_id, sid)
            if user is not None:
                gone.append((room_id, user))
        return gone

    async def is_in(self, room_id: str, sid: str) -> bool:
        return await self._local.is_in(room_id, sid)

    async def online(self, room_id: str) -> list[OnlineUser]:
        try:
            entries = await self._redis.hgetall(_room_key(room_id))
            live = await self._live()
        except Exception as exc:
            log.warning("presence_redis_failed", error=repr(exc))
            return await self._local.online(room_id)
        users: dict[str, OnlineUser] = {}
        dead: list[bytes] = []
        for field, value in entries.items():
            node = field.decode().partition(_SEP)[0]
            if node not in live:
                dead.append(field)
                continue
            entry = _entry_decoder.decode(value)
            known = users.get(entry.id)
            if known is None or entry.connected_at < known.connected_at:
                users[entry.id] = entry
        if dead:  # a crashed node's entries: nobody else will delete them
            with contextlib.suppress(Exception):
                await self._redis.hdel(_room_key(room_id), *dead)
        return sorted(users.values(), key=lambda u: (u.connected_at, u.id))
