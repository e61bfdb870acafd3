"""Typing indicators: who is typing in which room, with a timer that stops them.

A socket that sent ``typing:start`` is typing in that room until it sends
``typing:stop``, leaves the room, disconnects, or stays silent for ``timeout``
seconds (a client that crashed mid-sentence must not type forever). Another
``typing:start`` while typing only restarts the timer, so a client may repeat
it as the user keeps typing without the others seeing a flood.

State is per process and per socket: a socket's typing lives and dies with its
connection, on the node that holds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from roomcast.domain.state import UserRef

__all__ = ["Typing"]

log = structlog.get_logger("roomcast.gateway")

Expired = Callable[[str, str, UserRef], Awaitable[None]]
"""``expired(room_id, sid, user)``: the timer ran out; announce the stop."""


@dataclass
class _Typist:
    user: UserRef
    timer: asyncio.TimerHandle


class Typing:
    """Typing state per (room, socket); ``expired`` is awaited when a timer runs out."""

    def __init__(self, timeout: float, expired: Expired) -> None:
        if timeout <= 0:
            raise ValueError("the typing timeout must be positive")
        self.timeout = timeout
        self._expired = expired
        self._typing: dict[tuple[str, str], _Typist] = {}
        self._rooms_of: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, room_id: str, sid: str, user: UserRef) -> bool:
        """Mark ``sid`` typing in the room (or restart its timer); True if it was not."""
        key = (room_id, sid)
        typist = self._typing.get(key)
        if typist is not None:
            typist.timer.cancel()
        timer = asyncio.get_running_loop().call_later(self.timeout, self._fire, key)
        self._typing[key] = _Typist(user=user, timer=timer)
        self._rooms_of.setdefault(sid, set()).add(room_id)
        return typist is None

    def stop(self, room_id: str, sid: str) -> UserRef | None:
        """Stop ``sid`` typing in the room; who was typing, or None if it was not."""
        typist = self._typing.pop((room_id, sid), None)
        if typist is None:
            return None
        typist.timer.cancel()
        rooms = self._rooms_of[sid]
        rooms.discard(room_id)
        if not rooms:
            del self._rooms_of[sid]
        return typist.user

    def stop_all(self, sid: str) -> list[tuple[str, UserRef]]:
        """Stop ``sid`` everywhere (it disconnected); ``(room_id, user)`` it was typing in."""
        stopped: list[tuple[str, UserRef]] = []
        for room_id in sorted(self._rooms_of.get(sid, ())):
            user = self.stop(room_id, sid)
            if user is not None:
                stopped.append((room_id, user))
        return stopped

    def is_typing(self, room_id: str, sid: str) -> bool:
        return (room_id, sid) in self._typing

    def __len__(self) -> int:
        return len(self._typing)

    def _fire(self, key: tuple[str, str]) -> None:
        room_id, sid = key
        user = self.stop(room_id, sid)
        if user is None:  # stopped in the same loop iteration the timer fired
            return
        task = asyncio.get_running_loop().create_task(self._announce(room_id, sid, user))
        self._tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _announce(self, room_id: str, sid: str, user: UserRef) -> None:
        try:
            await self._expired(room_id, sid, user)
        except Exception:  # a timer has nobody to answer to: log it, never lose it silently
            log.exception("typing_timeout_failed", room_id=room_id, sid=sid)
