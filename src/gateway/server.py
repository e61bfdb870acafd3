"""The Socket.IO server: connect with a JWT, subscribe with replay, unsubscribe, replay.

Handlers are thin: parse the payload into a Struct, check the caller against the
room's current state, then read or join. Every handler answers: success or a
typed error in the seed-003 envelope, in the ack when the client asked for one
and as an ``error`` event when it did not.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import socketio
import structlog

from roomcast import wire
from roomcast.domain.errors import AuthenticationFailed, InvalidPayload, PermissionDenied
from roomcast.domain.state import UserRef
from roomcast.gateway import jsoncodec, replay
from roomcast.gateway.delivery import (
    LocalDelivery,
    RedisDelivery,
    Registry,
    Visibility,
    room_name,
    seq_of,
)
from roomcast.gateway.errors import as_ack, as_error_event
from roomcast.gateway.outlet import Outlet
from roomcast.gateway.protocol import ReplayRequest, SubscribeRequest, UnsubscribeRequest, parse
from roomcast.outbox.codec import Envelope
from roomcast.outbox.store import EventStore
from roomcast.service.rooms import RoomService
from roomcast.tokens import TokenVerifier

__all__ = ["Gateway", "GatewayServices", "create_gateway"]

log = structlog.get_logger("roomcast.gateway")

_REPLAY_PAGE = 500
_ack_requested: contextvars.ContextVar[bool] = contextvars.ContextVar("ack", default=True)


@dataclass(frozen=True, slots=True)
class GatewayServices:
    store: EventStore
    rooms: RoomService
    verifier: TokenVerifier


class _Server(socketio.AsyncServer):  # type: ignore[misc]
    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        # Our handlers must know whether the client asked for an ack: a refusal
        # without one is reported as an `error` event instead (seed 003).
        _ack_requested.set(id is not None)
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)


Handler = Callable[[str, UserRef, tuple[Any, ...]], Awaitable[Any]]


class Gateway:
    """The server and its handlers; ``services`` is filled in by the app's lifespan."""

    def __init__(
        self,
        *,
        cors_origins: Sequence[str] = (),
        ping_interval: int = 25,
        ping_timeout: int = 20,
        redis_url: str | None = None,
        max_message_bytes: int = 64 * 1024,
    ) -> None:
        self.registry = Registry()
        manager: LocalDelivery = (
            RedisDelivery(redis_url, channel="roomcast", json=jsoncodec)
            if redis_url
            else LocalDelivery()
        )
        manager.bind(self.registry)
        self.delivery = manager
        self.services: GatewayServices | None = None
        self.sio = _Server(
            async_mode="asgi",
            client_manager=manager,
            json=jsoncodec,
            # None = same origin only; [] would switch the Origin check off entirely.
            cors_allowed_origins=list(cors_origins) if cors_origins else None,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_http_buffer_size=max_message_bytes,
            logger=False,
            engineio_logger=False,
        )
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self._route("room:subscribe", self._subscribe)
        self._route("room:unsubscribe", self._unsubscribe)
        self._route("room:replay", self._replay)
        self.sio.on("*", self._unknown)

    # ---------------------------------------------------------------- plumbing

    def _svc(self) -> GatewayServices:
        if self.services is None:
            raise RuntimeError("gateway services are not open")
        return self.services

    def _route(self, event: str, handler: Handler) -> None:
        async def answer(sid: str, *args: Any) -> Any:
            try:
                user = self.registry.users.get(sid)
                if user is None:
                    raise AuthenticationFailed("not authenticated")
                return wire.success(await handler(sid, user, args))
            except Exception as exc:  # every handler answers, whatever failed
                if not _ack_requested.get():
                    await self.sio.emit("error", as_error_event(exc), to=sid)
                return as_ack(exc)

        self.sio.on(event, answer)

    async def _unknown(self, event: str, sid: str, *args: Any) -> Any:
        exc = InvalidPayload(f"unknown event {event!r}", {"event": event})
        if not _ack_requested.get():
            await self.sio.emit("error", as_error_event(exc), to=sid)
        return as_ack(exc)

    async def _connect(self, sid: str, environ: Any, auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            if not isinstance(token, str) or not token:
                raise AuthenticationFailed("Authentication failed: auth.token is required")
            claims = self._svc().verifier.verify(token)
        except AuthenticationFailed as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                f"{exc.code}: {exc.message}", {"code": exc.code.value, "message": exc.message}
            ) from None
        self.registry.add(sid, claims.user)
        log.info("socket_connected", sid=sid, user_id=claims.user.id)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        self.registry.remove(sid)
        log.info("socket_disconnected", sid=sid, reason=str(reason))

    # ---------------------------------------------------------------- handlers

    async def _subscribe(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> Any:
        request = parse(SubscribeRequest, args)
        room = room_name(request.room_id)
        store = self._svc().store
        out = Outlet(self.delivery, sid, batch=request.batch)
        self.delivery.open_gate(room, sid)
        try:
            await self.sio.enter_room(sid, room)
            # Read the head after joining: everything after it reaches the gate.
            # Nothing reaches this socket until the permission check below passes.
            head, member = await store.head_and_member(request.room_id, user.id, request.last_seq)
            state, _ = await self._svc().rooms.readable(
                request.room_id, user.id, "room:subscribe", head=head
            )
            if request.last_seq is not None and request.last_seq > head:
                # A seq this room never reached: the client's history is not this log's.
                raise InvalidPayload(
                    f"lastSeq {request.last_seq} is ahead of the room's head {head}",
                    {"roomId": request.room_id, "headSeq": head},
                )
            after = head if request.last_seq is None else request.last_seq
            visibility = Visibility(user.id, member=member)
            async with contextlib.aclosing(
                replay.pages(store, request.room_id, after, head, _REPLAY_PAGE)
            ) as log_pages:
                async for page in log_pages:
                    if sid not in self.registry.users:  # the socket left: stop reading
                        break
                    out.send(
                        [(e.event, e.payload) for e in page if visibility.admit(e.event, e.payload)]
                    )
            # Flush what arrived live meanwhile; the gate stays open until a take()
            # finds nothing, with no await in between, so no broadcast slips past.
            while held := self.registry.take(room, sid):
                out.send(
                    [(ev, d) for ev, d in held if seq_of(d) > head and visibility.admit(ev, d)]
                )
        except BaseException:
            self.delivery.close_gate(room, sid, batch=False)
            await self.sio.leave_room(sid, room)
            raise
        self.delivery.close_gate(room, sid, batch=request.batch, floor=max(head, out.last_seq))
        if not visibility.member:  # removed while we were replaying
            await self.sio.leave_room(sid, room)
            raise PermissionDenied(
                "you are no longer a member of this room",
                {"action": "room:subscribe", "roomId": request.room_id},
            )
        await self.sio.emit("room:subscribed", {"roomId": request.room_id, "headSeq": head}, to=sid)
        return {"roomId": request.room_id, "room": state.info, "headSeq": head}

    async def _unsubscribe(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> Any:
        request = parse(UnsubscribeRequest, args)
        room = room_name(request.room_id)
        self.registry.close_gate(room, sid)
        await self.sio.leave_room(sid, room)
        await self.sio.emit("room:unsubscribed", {"roomId": request.room_id}, to=sid)
        return {"roomId": request.room_id}

    async def _replay(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> Any:
        request = parse(ReplayRequest, args)
        _, head = await self._svc().rooms.readable(request.room_id, user.id, "room:replay")
        store = self._svc().store
        page = await store.read(request.room_id, request.after_seq, request.limit)
        visibility = Visibility(
            user.id, member=await store.member_after(request.room_id, user.id, request.after_seq)
        )
        visible: list[Envelope] = [e for e in page if visibility.admit(e.event, e.payload)]
        next_after = seq_of(page[-1].payload) if page else request.after_seq
        return {
            "roomId": request.room_id,
            "events": visible,
            "headSeq": head,
            "nextAfter": next_after,
        }

    # ---------------------------------------------------------------- relay side

    async def publish(self, room_id: str, event: str, payload: msgspec.Raw) -> None:
        """Broadcast one relayed event to the room (through Redis when configured)."""
        await self.sio.emit(event, payload, room=room_name(room_id))


def create_gateway(**options: Any) -> Gateway:
    return Gateway(**options)
