"""Presence and typing on the socket: ``presence:*`` and ``typing:*``.

Both are ephemeral. Nothing here touches the log: the notices carry no ``seq``
and are not replayed. They go to the room's sockets like room events do
(through Redis when configured), from three kinds of moment:

* a socket's ``room:subscribe`` passed its checks (``subscribed``, called by
  the handler just before its ack) or its recovery restored the room: its
  user comes online in the room if this is their first socket there;
* a socket left a room, however (``left``, hooked into the client manager by
  ``roomwatch``): it stops typing there, and its user goes offline if it was
  their last socket there;
* a socket disconnected (``disconnected``): the same, for every room it was in.

Presence state lives behind ``PresenceStore`` (``presence.py``); typing state
in ``Typing`` (``indicators.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import structlog

from roomcast.domain.errors import PermissionDenied
from roomcast.domain.state import UserRef
from roomcast.gateway.delivery import Registry, room_name
from roomcast.gateway.indicators import Typing
from roomcast.gateway.presence import OnlineUser, PresenceStore
from roomcast.gateway.protocol import RoomId, parse

__all__ = [
    "LiveRooms",
    "OnlineList",
    "PresenceOffline",
    "PresenceOnline",
    "PresenceRequest",
    "TypingNotice",
    "TypingRequest",
]

log = structlog.get_logger("roomcast.gateway")

_ROOM_PREFIX = room_name("")


# ------------------------------------------------------------------ wire shapes


class _Wire(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    pass


class PresenceRequest(_Wire, frozen=True, kw_only=True):
    """``presence:get_online``'s payload."""

    room_id: RoomId


class TypingRequest(_Wire, frozen=True, kw_only=True):
    """``typing:start`` and ``typing:stop``'s payload."""

    room_id: RoomId


class PresenceUser(_Wire, frozen=True, kw_only=True):
    """A user as presence and typing show them (``avatar`` is always present, maybe null)."""

    id: str
    name: str
    avatar: str | None = None


class PresenceOnline(_Wire, frozen=True, kw_only=True):
    """``presence:user_online``."""

    room_id: str
    user_id: str
    user: PresenceUser
    timestamp: datetime


class PresenceOffline(_Wire, frozen=True, kw_only=True):
    """``presence:user_offline``."""

    room_id: str
    user_id: str
    timestamp: datetime


class OnlineList(_Wire, frozen=True, kw_only=True):
    """``presence:get_online``'s ack data."""

    room_id: str
    users: list[OnlineUser]
    count: int


class TypingNotice(_Wire, frozen=True, kw_only=True):
    """``typing:user_typing`` and ``typing:user_stopped``."""

    room_id: str
    user_id: str
    user: PresenceUser
    timestamp: datetime


class RoomAck(_Wire, frozen=True, kw_only=True):
    """The ack data of ``typing:start`` / ``typing:stop``."""

    room_id: str
    typing: bool


# ------------------------------------------------------------------ handlers


class _Emitter(Protocol):
    async def emit(
        self, event: str, data: Any = None, *, room: str | None = None, skip_sid: Any = None
    ) -> None: ...

    def in_room(self, sid: str, room: str) -> bool: ...


Readable = Callable[[str, str, str], Awaitable[object]]
"""``readable(room_id, user_id, action)``: ROOM_NOT_FOUND / PERMISSION_DENIED, or returns."""

Handler = Callable[[str, UserRef, tuple[Any, ...]], Awaitable[Any]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _user(user: UserRef) -> PresenceUser:
    return PresenceUser(id=user.id, name=user.name, avatar=user.avatar)


class LiveRooms:
    """Presence and typing for this node's sockets."""

    def __init__(
        self,
        server: _Emitter,
        registry: Registry,
        *,
        presence: PresenceStore,
        typing_timeout: float,
        readable: Readable,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._server = server
        self._registry = registry
        self.presence = presence
        self.typing = Typing(typing_timeout, self._typing_expired)
        self._readable = readable
        self._now = now

    # ------------------------------------------------------------ hooks

    async def subscribed(self, room_id: str, sid: str, user: UserRef) -> None:
        # A socket that disconnected, or was evicted, while its subscribe was
        # replaying is not in the room: it must not come online there.
        if sid not in self._registry.users or not self._server.in_room(sid, room_name(room_id)):
            return
        if await self.presence.join(room_id, sid, user, self._now()):
            notice = PresenceOnline(
                room_id=room_id, user_id=user.id, user=_user(user), timestamp=self._now()
            )
            await self._server.emit("presence:user_online", notice, room=room_name(room_id))

    async def left(self, sid: str, room: str) -> None:
        """A socket left a room (unsubscribe, eviction, failed subscribe)."""
        if not room.startswith(_ROOM_PREFIX):
            return
        room_id = room.removeprefix(_ROOM_PREFIX)
        # The socket has left whatever happens here: a failed notice must not
        # fail the unsubscribe or the eviction that called us.
        try:
            typist = self.typing.stop(room_id, sid)
            if typist is not None:
                await self._typing_stopped(room_id, typist, skip_sid=sid)
            user = await self.presence.leave(room_id, sid)
            if user is not None:
                await self._offline(room_id, user, skip_sid=sid)
        except Exception:
            log.exception("presence_leave_failed", sid=sid, room_id=room_id)

    async def disconnected(self, sid: str) -> None:
        """A socket disconnected (by itself, by the ping timeout, or by the server)."""
        try:
            for room_id, typist in self.typing.stop_all(sid):
                await self._typing_stopped(room_id, typist, skip_sid=sid)
            for room_id, user in await self.presence.leave_all(sid):
                await self._offline(room_id, user, skip_sid=sid)
        except Exception:
            log.exception("presence_disconnect_failed", sid=sid)

    # ------------------------------------------------------------ client events

    async def get_online(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> OnlineList:
        request = parse(PresenceRequest, args)
        # Only those who may read the room see who is in it.
        await self._readable(request.room_id, user.id, "presence:get_online")
        users = await self.presence.online(request.room_id)
        return OnlineList(room_id=request.room_id, users=users, count=len(users))

    async def typing_start(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> RoomAck:
        request = parse(TypingRequest, args)
        # Subscribed implies a member: evictions take removed users out at once,
        # so this needs no database read per keystroke.
        if not await self.presence.is_in(request.room_id, sid):
            raise PermissionDenied(
                "subscribe to the room before typing in it",
                {"action": "typing:start", "roomId": request.room_id},
            )
        if self.typing.start(request.room_id, sid, user):
            notice = self._typing_notice(request.room_id, user)
            await self._server.emit(
                "typing:user_typing", notice, room=room_name(request.room_id), skip_sid=sid
            )
        return RoomAck(room_id=request.room_id, typing=True)

    async def typing_stop(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> RoomAck:
        request = parse(TypingRequest, args)
        typist = self.typing.stop(request.room_id, sid)
        if typist is not None:
            await self._typing_stopped(request.room_id, typist, skip_sid=sid)
        return RoomAck(room_id=request.room_id, typing=False)

    # ------------------------------------------------------------ notices

    async def _typing_expired(self, room_id: str, sid: str, user: UserRef) -> None:
        await self._typing_stopped(room_id, user, skip_sid=sid)

    async def _typing_stopped(self, room_id: str, user: UserRef, *, skip_sid: str) -> None:
        await self._server.emit(
            "typing:user_stopped",
            self._typing_notice(room_id, user),
            room=room_name(room_id),
            skip_sid=skip_sid,
        )

    async def _offline(self, room_id: str, user: UserRef, *, skip_sid: str) -> None:
        notice = PresenceOffline(room_id=room_id, user_id=user.id, timestamp=self._now())
        await self._server.emit(
            "presence:user_offline", notice, room=room_name(room_id), skip_sid=skip_sid
        )

    def _typing_notice(self, room_id: str, user: UserRef) -> TypingNotice:
        return TypingNotice(
            room_id=room_id, user_id=user.id, user=_user(user), timestamp=self._now()
        )
