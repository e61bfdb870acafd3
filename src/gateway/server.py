"""The Socket.IO server: connect with a JWT, subscribe with replay, unsubscribe, replay.

Presence and typing (``live.py``), per-connection limits (``limits.py``) and
token expiry (``sessions.py``) are registered here and live in their modules.

Handlers are thin: parse the payload into a Struct, check the caller against the
room's current state, then read or join. Every handler answers: success or a
typed error in the seed-003 envelope, in the ack when the client asked for one
and as an ``error`` event when it did not.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import engineio
import engineio.async_socket
import msgspec
import socketio
import structlog

from roomcast import wire
from roomcast.domain.errors import (
    AuthenticationFailed,
    InvalidPayload,
    NotFound,
    PermissionDenied,
    RateLimitExceeded,
    Rejected,
    RoomNotFound,
    SlowConsumer,
    TooManyConnections,
)
from roomcast.domain.notifications import inbox_stream
from roomcast.domain.state import UserRef
from roomcast.gateway import jsoncodec, recovery, replay
from roomcast.gateway.delivery import (
    Registry,
    payload_of,
    room_name,
    seq_of,
)
from roomcast.gateway.errors import as_ack, as_error_event
from roomcast.gateway.guard import (
    RESERVED_EVENTS,
    MalformedPacket,
    QuietLog,
    check_event,
    library_logger,
    reserved_event,
)
from roomcast.gateway.history import RecentEvents
from roomcast.gateway.limits import ClientLimits, attachment_count, event_header
from roomcast.gateway.live import LiveRooms
from roomcast.gateway.outlet import Outlet
from roomcast.gateway.presence import MemoryPresence, PresenceStore
from roomcast.gateway.protocol import (
    AnswerRequest,
    MarkReadRequest,
    NotificationReplayRequest,
    ReplayCut,
    ReplayRequest,
    SubscribeAck,
    SubscribeData,
    SubscribeRequest,
    UnsubscribeRequest,
    parse,
    presence_ack,
    quiz_ack,
    replay_cut,
)
from roomcast.gateway.publisher import NodePublisher
from roomcast.gateway.roomwatch import PositionWatch
from roomcast.gateway.sessions import Sessions
from roomcast.gateway.sockets import LocalSockets, RedisSockets
from roomcast.gateway.transport import CheckedSocket, CheckedWebSocket, OutboundQueue
from roomcast.metrics import REPLAYS
from roomcast.outbox.codec import Envelope
from roomcast.outbox.recovery_log import RecoveryLog, StoredSession
from roomcast.outbox.store import EventStore
from roomcast.service.feed import LiveFeed
from roomcast.service.notifications import NotificationService
from roomcast.service.quiz import QuizService
from roomcast.service.rooms import RoomService
from roomcast.service.visibility import Visibility, member_at_end, visible_count
from roomcast.tokens import TokenVerifier

__all__ = ["Gateway", "GatewayServices", "create_gateway"]

log = structlog.get_logger("roomcast.gateway")

_REPLAY_PAGE = 500
_ROOM_PREFIX = room_name("")
_PACE_EVENTS = 32
"""A replay is queued this many events at a time, each run once the socket's output
has drained below a quarter of its high-water mark."""
_ack_requested: contextvars.ContextVar[bool] = contextvars.ContextVar("ack", default=True)

AckNow = Callable[[Any], Awaitable[None]]
"""Send this event's ack now (once; a no-op when the client asked for none)."""


async def _no_ack(_: Any) -> None:
    return None


_send_ack: contextvars.ContextVar[AckNow] = contextvars.ContextVar("send_ack", default=_no_ack)
"""Set per client event by ``_Server``: the raw ack sender (the handler's result as is)."""
_ns: contextvars.ContextVar[str] = contextvars.ContextVar("namespace", default="/")
"""The namespace a subscribe or recovery runs in: ``/``, or a room's ``/rooms/{roomId}``."""
ROOM_NAMESPACE = "/rooms/"
"""Seed 003's room namespace: connecting to ``/rooms/{roomId}`` subscribes to the room."""
_ack_now: contextvars.ContextVar[AckNow] = contextvars.ContextVar("ack_now", default=_no_ack)
"""Set per client event by ``Gateway._route``: the ack sender, the route's ack shape applied."""


@dataclass(frozen=True, slots=True)
class GatewayServices:
    store: EventStore
    rooms: RoomService
    verifier: TokenVerifier
    quiz: QuizService
    notifications: NotificationService
    recovery: RecoveryLog | None = None
    """Sessions and relay batches for connection state recovery (None: no recovery)."""


def _refused(exc: Rejected) -> socketio.exceptions.ConnectionRefusedError:
    """A refused CONNECT: seed 003's ``error.message`` text, the code in ``error.data``."""
    message = exc.message
    if isinstance(exc, AuthenticationFailed) and not message.startswith("Authentication failed"):
        message = f"Authentication failed: {message}"
    return socketio.exceptions.ConnectionRefusedError(
        message, {"code": exc.code.value, "message": message, "details": exc.details}
    )


def _as_is(result: Any) -> Any:
    return result


class _Server(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server with the packet-level guards of ``guard.py``.

    Private parts overridden (pinned, covered by tests/e2e/test_hostile_packets.py):
    ``_handle_eio_message``, ``_handle_event``, ``_handle_connect``,
    ``_handle_event_internal``, ``_binary_packet``; engine.io's ``sockets``;
    ``_send_packet`` (the CONNECT reply's ``pid``: tests/e2e/test_recovery.py).
    """

    limits: ClientLimits | None = None
    """Checked for every client event, before any handler (gateway/limits.py)."""
    pids: dict[str, str]
    """Per socket: the ``pid`` its CONNECT reply carries (connection state recovery)."""

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        # python-socketio writes `{"sid": …}` as the CONNECT reply and knows no
        # `pid`; socket.io-client recovers only when the reply carries one.
        if pkt.packet_type == socketio.packet.CONNECT and isinstance(pkt.data, dict):
            pid = self.pids.get(str(pkt.data.get("sid")))
            if pid is not None:
                pkt.data = {**pkt.data, "pid": pid}
        await super()._send_packet(eio_sid, pkt)

    connect_timeout: float = 45.0
    """Seconds an Engine.IO session may stay open without a Socket.IO CONNECT."""
    outbound_limit: int = 8 * 1024 * 1024
    """Bytes of unsent output one connection may have waiting (0: unbounded)."""
    overflow_grace: float = 5.0
    """Seconds an overflowed connection gets to read its notice before it is aborted."""
    stall_timeout: float = 5.0
    """Seconds a replay waits for its socket to drain before ending it as a slow consumer."""
    poll_timeout: float = 45.0
    """Seconds a long-polling session may go without a GET in flight before it is ended."""

    _malformed_log = QuietLog("socket_packet_malformed")
    # One session per request at least, but a client's choice: rate-limited.
    _poll_log = QuietLog("socket_poll_timeout")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connect_timers: dict[str, asyncio.TimerHandle] = {}
        self._attachment_bytes: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        # Room subscriptions count against the socket's limit; its inbox (a stream
        # named ``user:{id}``: room ids never hold a ':') does not.
        if (
            self.limits is not None
            and room.startswith(_ROOM_PREFIX)
            and ":" not in room[len(_ROOM_PREFIX) :]
        ):
            self.limits.joining(sid, room)
        await super().enter_room(sid, room, namespace=namespace)

    def in_room(self, sid: str, room: str, namespace: str = "/") -> bool:
        # `rooms(sid)` walks every room of the namespace (each socket has one of
        # its own): per subscribe that is O(sockets), quadratic in a reconnect storm.
        return sid in self.manager.rooms.get(namespace, {}).get(room, ())

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return _EngineServer

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> Any:
        result = await super()._handle_eio_connect(eio_sid, environ)
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and type(socket) is engineio.async_socket.AsyncSocket:
            socket.__class__ = CheckedSocket  # same state; a checked polling POST
        if isinstance(socket, CheckedSocket):
            socket.watch_polls(self.poll_timeout, lambda: self._not_polling(eio_sid))
        if socket is not None and isinstance(socket.queue, OutboundQueue):
            socket.queue.bind(self.outbound_limit, lambda: self._overflowed(eio_sid))
        loop = asyncio.get_running_loop()
        self._connect_timers[eio_sid] = loop.call_later(
            self.connect_timeout, self._connect_timed_out, eio_sid
        )
        return result

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and isinstance(socket.queue, OutboundQueue):
            socket.queue.release()  # a replay waiting for it to drain stops waiting
        if isinstance(socket, CheckedSocket):
            socket.unwatch_polls()
        timer = self._connect_timers.pop(eio_sid, None)
        if timer is not None:
            timer.cancel()
        self._attachment_bytes.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)

    def _overflowed(self, eio_sid: str) -> None:
        task = asyncio.get_running_loop().create_task(self._end_slow(eio_sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_slow(self, eio_sid: str) -> None:
        """End a connection whose unsent output passed the high-water mark.

        What waited is already dropped (``OutboundQueue``). The client is told why
        (an ``error`` event, SLOW_CONSUMER, then the Engine.IO CLOSE) if it reads
        again within ``overflow_grace``: over WebSocket the writer sends them once
        the transport drains, and the TCP connection is aborted at the end of the
        grace; over long-polling the session stays reachable for its next GET to
        fetch them (``CheckedSocket.farewell``) and is forgotten at the end of the
        grace. It reconnects and resubscribes from its last seq like after any
        transport loss; the connection is not refused (no Socket.IO DISCONNECT),
        so clients reconnect by themselves.
        """
        socket = self.eio.sockets.get(eio_sid)
        if socket is None:
            return
        queue = socket.queue
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        log.warning(
            "socket_slow_consumer", sid=sid, eio_sid=eio_sid, limit_bytes=self.outbound_limit
        )
        notice = SlowConsumer(
            "this connection fell too far behind reading: it is closed; reconnect and"
            " resubscribe with lastSeq",
            {"limitBytes": self.outbound_limit},
        )
        if sid is not None:
            packets = self.manager.delivery.packets("/", "error", [as_error_event(notice)])
            for pkt in packets:
                queue.put_after_overflow(pkt)
        queue.put_after_overflow(engineio.packet.Packet(engineio.packet.CLOSE))
        await socket.close(wait=False, abort=True)
        queue.put_nowait(None)  # the writer ends once it has sent what it can
        loop = asyncio.get_running_loop()
        ws = getattr(socket, "roomcast_ws", None)
        if ws is not None:
            self.eio.sockets.pop(eio_sid, None)
            loop.call_later(self.overflow_grace, ws.abort)
        elif isinstance(socket, CheckedSocket):
            socket.farewell = True
            loop.call_later(self.overflow_grace, self._forget, eio_sid, socket)
        else:
            self.eio.sockets.pop(eio_sid, None)

    def _forget(self, eio_sid: str, socket: Any) -> None:
        """A polling session that did not fetch its farewell in time: gone, queue and all."""
        socket.farewell = False
        socket.queue.clear()
        if self.eio.sockets.get(eio_sid) is socket:
            del self.eio.sockets[eio_sid]

    def _not_polling(self, eio_sid: str) -> None:
        self._poll_log.warning(eio_sid=eio_sid, timeout_seconds=self.poll_timeout)
        task = asyncio.get_running_loop().create_task(self._drop(eio_sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drained(self, sid: str, namespace: str = "/") -> None:
        """Wait while ``sid``'s unsent output is above a quarter of the high-water
        mark: a replay reads its next page only when the client keeps up.

        A client that reads nothing for ``stall_timeout`` seconds meanwhile is
        ended as a slow consumer (SLOW_CONSUMER, raised here too).
        """
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
        socket = self.eio.sockets.get(eio_sid) if eio_sid is not None else None
        if socket is None or not isinstance(socket.queue, OutboundQueue):
            return
        if await socket.queue.drained(self.stall_timeout):
            return
        if eio_sid is not None and not socket.queue.overflowed:
            socket.queue.overflowed = True
            socket.queue.clear()
            self._overflowed(eio_sid)
        raise SlowConsumer("this connection stopped reading", {"limitBytes": self.outbound_limit})

    def _connect_timed_out(self, eio_sid: str) -> None:
        self._connect_timers.pop(eio_sid, None)
        task = asyncio.get_running_loop().create_task(self._drop(eio_sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await self._guarded_message(eio_sid, data)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, RecursionError) as exc:
            # Undecodable: the Socket.IO specification closes the connection.
            self._binary_packet.pop(eio_sid, None)
            self._malformed_log.warning(
                error=type(exc).__name__, message=str(exc)[:200], eio_sid=eio_sid
            )
            await self._drop(eio_sid)

    async def _guarded_message(self, eio_sid: str, data: Any) -> None:
        limits = self.limits
        if eio_sid in self._binary_packet:
            if limits is not None:
                total = self._attachment_bytes.get(eio_sid, 0) + len(data)
                if total > limits.max_attachment_bytes:
                    raise MalformedPacket(
                        f"binary attachments over {limits.max_attachment_bytes} bytes"
                    )
                self._attachment_bytes[eio_sid] = total
            await super()._handle_eio_message(eio_sid, data)
            if eio_sid not in self._binary_packet:
                self._attachment_bytes.pop(eio_sid, None)
            return
        if not isinstance(data, str):
            raise MalformedPacket("a binary attachment no packet announced")
        if limits is not None and data[:1] in ("5", "6"):
            announced = attachment_count(data)
            if announced > limits.max_attachments:
                raise MalformedPacket(
                    f"{announced} binary attachments announced, at most {limits.max_attachments}"
                )
            if announced < 1:
                raise MalformedPacket("a binary packet announces no attachment")
        # An event over the message limit is refused here, before it is decoded,
        # while its ack id can still be read from the packet's header.
        if (
            limits is not None
            and data[:1] not in ("5", "6")  # binary: bounded by the frame and attachment limits
            and (size := limits.oversized(data)) is not None
        ):
            header = event_header(data)
            if header is None:
                raise MalformedPacket(f"a {size}-byte message that is not an event")
            sid = self.manager.sid_from_eio_sid(eio_sid, header.namespace)
            if sid is not None and self.manager.is_connected(sid, header.namespace):
                try:
                    limits.admit(sid)
                    error: Rejected = limits.too_large(size, header.event)
                except RateLimitExceeded as exc:
                    error = exc
                await self._refuse(sid, eio_sid, header.namespace, header.ack_id, error)
            return
        await super()._handle_eio_message(eio_sid, data)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        namespace = namespace or "/"
        if not (
            namespace in self.handlers
            or namespace in self.namespace_handlers
            or namespace.startswith(ROOM_NAMESPACE)
            or namespace in self.namespaces
        ):
            await self._connect_error(
                eio_sid, namespace, NotFound(f"no namespace {namespace[:100]!r}")
            )
            return
        if self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
            # A second CONNECT on a namespace this session already joined: refused,
            # the connection it already has is left as it is.
            await self._connect_error(
                eio_sid,
                namespace,
                InvalidPayload(f"already connected to namespace {namespace[:100]!r}"),
            )
            return
        await super()._handle_connect(eio_sid, namespace, data)
        if self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
            timer = self._connect_timers.pop(eio_sid, None)
            if timer is not None:
                timer.cancel()

    async def _connect_error(self, eio_sid: str, namespace: str, exc: Rejected) -> None:
        await self._send_packet(
            eio_sid,
            self.packet_class(
                socketio.packet.CONNECT_ERROR,
                data={"message": exc.message, "data": {"code": exc.code.value}},
                namespace=namespace,
            ),
        )

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        name = check_event(data)
        if self.manager.sid_from_eio_sid(eio_sid, namespace or "/") is None:
            # An event on a namespace this session never joined (or left): Node's
            # server closes the connection ("invalid state"), python-socketio ignored
            # it, leaving a client waiting for an answer that never comes.
            raise MalformedPacket("an event on a namespace that is not connected")
        if name in RESERVED_EVENTS:
            namespace = namespace or "/"
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is None or not self.manager.is_connected(sid, namespace):
                return
            if self.limits is not None:
                try:
                    self.limits.admit(sid)
                except RateLimitExceeded as exc:
                    await self._refuse(sid, eio_sid, namespace, id, exc)
                    return
            await self._refuse(sid, eio_sid, namespace, id, reserved_event(name))
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        # Replaces python-socketio 5.x's own (pinned; docs/architecture.md):
        # * our handlers must know whether the client asked for an ack: a refusal
        #   without one is reported as an `error` event instead (seed 003);
        # * a handler may send its ack before it returns (`room:subscribe` acks,
        #   then replays: handlers added in the ack callback see the replay).
        _ack_requested.set(id is not None)
        if self.limits is not None:
            try:
                self.limits.admit(sid)  # every client event counts, known or not
            except RateLimitExceeded as exc:
                await self._refuse(sid, eio_sid, namespace, id, exc)
                return
        sent = False

        async def send_ack(result: Any) -> None:
            nonlocal sent
            if id is None or sent:
                return
            sent = True
            args = [] if result is None else list(result) if isinstance(result, tuple) else [result]
            await self._send_packet(
                eio_sid,
                self.packet_class(socketio.packet.ACK, namespace=namespace, id=id, data=args),
            )

        _send_ack.set(send_ack)
        result = await server._trigger_event(data[0], namespace, sid, *data[1:])
        if result != self.not_handled:
            await send_ack(result)

    async def _drop(self, eio_sid: str) -> None:
        """End an Engine.IO session now: CLOSE, then the transport, without waiting
        for the client to read what is queued (a client that does not read never would)."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is None:
            return
        await socket.close(wait=False, abort=False)
        socket.queue.put_nowait(None)  # the WebSocket writer ends and closes the transport
        self.eio.sockets.pop(eio_sid, None)

    async def _refuse(
        self, sid: str, eio_sid: str, namespace: str, ack_id: int | None, exc: Rejected
    ) -> None:
        """Answer an event no handler will see: in its ack, else as an ``error`` event."""
        if ack_id is None:
            await self.emit("error", as_error_event(exc), to=sid, namespace=namespace)
            return
        await self._send_packet(
            eio_sid,
            self.packet_class(
                socketio.packet.ACK, namespace=namespace, id=ack_id, data=[as_ack(exc)]
            ),
        )


class _EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """engine.io's server whose sockets queue their output on an ``OutboundQueue``.

    Private part overridden (pinned, tests/unit/test_hostile_input_overrides.py,
    tests/e2e/test_slow_polling.py): ``_get_socket``.
    """

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return super().create_queue(*args, **kwargs)
        return OutboundQueue()

    def _get_socket(self, sid: str) -> Any:
        # engine.io forgets a closed session at its next request; one ended as a
        # slow consumer over polling is kept for the GET that fetches its notice
        # (after which engine.io deletes it: the socket is closed).
        socket = self.sockets.get(sid)
        if isinstance(socket, CheckedSocket) and socket.farewell:
            return socket
        return super()._get_socket(sid)


Handler = Callable[[str, UserRef, tuple[Any, ...]], Awaitable[Any]]


class Gateway:
    """The server and its handlers; ``services`` is filled in by the app's lifespan."""

    def __init__(
        self,
        *,
        cors_origins: Sequence[str] | Callable[..., bool] = (),
        ping_interval: int = 25,
        ping_timeout: int = 20,
        redis_url: str | None = None,
        max_message_bytes: int = 64 * 1024,
        max_frame_bytes: int = 1024 * 1024,
        max_attachments: int = 10,
        max_connections_per_user: int = 16,
        max_subscriptions: int = 100,
        subscribe_replay_max: int = 10_000,
        connect_timeout: float = 45.0,
        outbound_limit: int = 8 * 1024 * 1024,
        overflow_grace: float = 5.0,
        poll_timeout: float = 45.0,
        events_per_minute: int = 100,
        typing_timeout: float = 5.0,
        recent_per_room: int = 10_000,
        recent_total: int = 100_000,
        position_check_seconds: float = 0.5,
        recovery: bool = True,
        presence: PresenceStore | None = None,
        recent_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.registry = Registry()
        self.subscribe_replay_max = subscribe_replay_max
        """Seqs one ``room:subscribe`` replays inline (0: all); the client pages the rest."""
        self.recent = RecentEvents(
            per_room=recent_per_room, total=recent_total, total_bytes=recent_bytes
        )
        self.feed = LiveFeed()
        """This node's room events for listeners other than sockets (the SSE streams)."""
        # python-socketio's manager is a part: it keeps the rooms and forwards
        # broadcasts and leaves to the delivery (gateway/sockets.py).
        manager: LocalSockets | RedisSockets = (
            RedisSockets(redis_url, self.registry, self.recent, self.feed, json=jsoncodec)
            if redis_url
            else LocalSockets(self.registry, self.recent, self.feed)
        )
        self.sockets = manager
        self.delivery = manager.delivery
        self.delivery.offsets = recovery
        self.publisher = NodePublisher(
            self.delivery,
            manager.redis_channel if isinstance(manager, RedisSockets) else None,
            offsets=recovery,
        )
        """What this node's relay publishes to (``outbox.relay.Publisher``)."""
        self.services: GatewayServices | None = None
        self._subscribing: dict[str, asyncio.Lock] = {}
        """Per socket: held while one of its subscribes runs."""
        self.positions = PositionWatch(
            self.delivery, lambda: self._svc().store, interval=position_check_seconds
        )
        if isinstance(manager, RedisSockets):
            # Listening again after an outage: check at once what was missed.
            manager.on_listening = self.positions.check_now
        """Per socket: held while one of its subscribes (or its recovery) runs."""
        self.recovery = recovery
        """Connection state recovery (gateway/recovery.py) on: pids, offsets, sessions."""
        self._session_rooms: dict[str, dict[str, int]] = {}
        """Per socket: its recoverable rooms, each with the seq its subscription started from."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.sio = _Server(
            async_mode="asgi",
            client_manager=manager,
            json=jsoncodec,
            # None = same origin only; [] would switch the Origin check off entirely.
            # A callable decides per Origin (roomcast.origins, development).
            cors_allowed_origins=(
                cors_origins
                if callable(cors_origins)
                else list(cors_origins)
                if cors_origins
                else None
            ),
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            # engine.io drops a connection whose frame is over this; the smaller
            # per-message limit is a typed refusal (gateway/limits.py).
            max_http_buffer_size=max(max_frame_bytes, max_message_bytes),
            # Their own lines go through ours: JSON, no traceback, rate-limited.
            logger=library_logger("roomcast.socketio"),
            engineio_logger=library_logger("roomcast.engineio"),
            # Any namespace reaches `_Server._handle_connect`, which lets only
            # "/" and seed 003's "/rooms/{roomId}" through.
            namespaces="*",
        )
        self.sio.pids = {}
        self.sio.limits = ClientLimits(
            events_per_minute=events_per_minute,
            max_message_bytes=max_message_bytes,
            max_attachments=max_attachments,
            max_attachment_bytes=max_frame_bytes,
            max_connections_per_user=max_connections_per_user,
            max_subscriptions=max_subscriptions,
        )
        self.sio.connect_timeout = connect_timeout
        self.sio.outbound_limit = outbound_limit
        self.sio.overflow_grace = overflow_grace
        self.sio.poll_timeout = poll_timeout
        # Per server, not engine.io's module-wide table: every frame is checked.
        self.sio.eio._async = {**self.sio.eio._async, "websocket": CheckedWebSocket}
        self.sessions = Sessions(self.sio)
        self.live = LiveRooms(
            self.sio,
            self.registry,
            presence=MemoryPresence() if presence is None else presence,
            typing_timeout=typing_timeout,
            readable=lambda room_id, user_id, action: self._svc().rooms.readable(
                room_id, user_id, action
            ),
        )
        manager.on_leave = self._left
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self._route("room:subscribe", self._subscribe, ack=_as_is)
        self._route("room:unsubscribe", self._unsubscribe)
        self._route("room:replay", self._replay)
        self._route("quiz:answer_submit", self._answer, ack=quiz_ack)
        self._route("notification:mark_read", self._mark_read)
        self._route("notification:replay", self._notification_replay)
        self._route("presence:get_online", self.live.get_online, ack=presence_ack)
        self._route("typing:start", self.live.typing_start)
        self._route("typing:stop", self.live.typing_stop)
        self.sio.on("*", self._unknown)
        self.sio.on("connect", self._room_connect, namespace="*")
        self.sio.on("disconnect", self._room_disconnect, namespace="*")
        self.sio.on("*", self._room_unknown, namespace="*")

    # ---------------------------------------------------------------- plumbing

    async def _left(self, sid: str, room: str) -> None:
        """A socket left a room (unsubscribe, eviction, failed subscribe)."""
        if self.sio.limits is not None:
            self.sio.limits.left(sid, room)
        await self.live.left(sid, room)

    def _svc(self) -> GatewayServices:
        if self.services is None:
            raise RuntimeError("gateway services are not open")
        return self.services

    def _route(
        self, event: str, handler: Handler, *, ack: Callable[[Any], Any] = wire.success
    ) -> None:
        async def answer(sid: str, *args: Any) -> Any:
            send = _send_ack.get()

            async def ack_now(result: Any) -> None:
                await send(ack(result))

            _ack_now.set(ack_now)
            try:
                user = self.registry.users.get(sid)
                if user is None:
                    raise AuthenticationFailed("not authenticated")
                return ack(await handler(sid, user, args))
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
            claims = await self._svc().verifier.verify_async(token)
            if self.sio.limits is not None:
                open_now = len(self.registry.sids_of_user.get(claims.user.id, ()))
                self.sio.limits.connection(claims.user.id, open_now)
        except (AuthenticationFailed, TooManyConnections) as exc:
            raise _refused(exc) from None
        self.registry.add(sid, claims.user)
        # Every socket of a user hears that user's notifications, live.
        await self.sio.enter_room(sid, room_name(inbox_stream(claims.user.id)))
        self.sessions.open(sid, claims)  # ends the socket when the token expires
        if self.recovery and self._svc().recovery is not None:
            session = await self._recoverable(auth, claims.user.id)
            self._session_rooms[sid] = {}
            self.sio.pids[sid] = session.pid if session is not None else recovery.new_pid()
            if session is not None:
                # Held from now: a subscribe sent on `connect` waits for the recovery.
                lock = self._subscribing.setdefault(sid, asyncio.Lock())
                await lock.acquire()
                offset = recovery.parse_offset(auth.get("offset"))
                # A task, so that its packets follow the CONNECT reply.
                task = asyncio.create_task(self._recover(sid, claims.user, session, offset, lock))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        log.info("socket_connected", sid=sid, user_id=claims.user.id)

    # ------------------------------------------------------------ /rooms/{roomId}

    async def _room_connect(self, namespace: str, sid: str, environ: Any, auth: Any = None) -> None:
        """Seed 003's room namespace: connecting subscribes the socket to the room
        (the same checks, replay and recovery as ``room:subscribe`` on ``/``); a
        refusal is a ``connect_error`` with the code in ``err.data.code``."""
        room_id = namespace[len(ROOM_NAMESPACE) :]
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            if not room_id or ":" in room_id or "/" in room_id or len(room_id) > 64:
                raise RoomNotFound(f"no room {room_id[:64]!r}", {"roomId": room_id[:64]})
            if not isinstance(token, str) or not token:
                raise AuthenticationFailed("Authentication failed: auth.token is required")
            claims = self._svc().verifier.verify(token)
            await self._svc().rooms.readable(room_id, claims.user.id, "room:subscribe")
            last_seq = auth.get("lastSeq") if isinstance(auth, dict) else None
            request = msgspec.convert({"roomId": room_id, "lastSeq": last_seq}, SubscribeRequest)
        except msgspec.ValidationError as exc:
            raise _refused(InvalidPayload(f"invalid auth: {exc}")) from None
        except Rejected as exc:
            raise _refused(exc) from None
        self.registry.add(sid, claims.user)
        lock = self._subscribing.setdefault(sid, asyncio.Lock())
        await lock.acquire()
        session = None
        if self.recovery and self._svc().recovery is not None:
            session = await self._recoverable(auth, claims.user.id)
            if session is not None and set(session.rooms) != {room_id}:
                session = None
            self._session_rooms[sid] = {}
            self.sio.pids[sid] = session.pid if session is not None else recovery.new_pid()
        offset = recovery.parse_offset(auth.get("offset")) if session is not None else None
        # A task, so that its packets follow the CONNECT reply; it runs in the
        # room's namespace (a context of its own: "/" shares the connection).
        context = contextvars.copy_context()
        context.run(_ns.set, namespace)
        task = asyncio.create_task(
            self._room_subscribe(sid, claims.user, request, session, offset, lock),
            context=context,
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _room_subscribe(
        self,
        sid: str,
        user: UserRef,
        request: SubscribeRequest,
        session: StoredSession | None,
        offset: recovery.Offset | None,
        lock: asyncio.Lock,
    ) -> None:
        try:
            if session is not None:
                await self._restore(sid, user, session, offset)
            else:
                await self._subscribe_locked(sid, user, request, _no_ack)
        except Rejected as exc:
            await self._subscribe_failed(sid, request.room_id, exc)
        except Exception:
            log.exception("room_namespace_subscribe_failed", sid=sid)
        finally:
            lock.release()

    async def _room_disconnect(self, namespace: str, sid: str, reason: Any = None) -> None:
        self._subscribing.pop(sid, None)
        self._session_rooms.pop(sid, None)
        self.sio.pids.pop(sid, None)
        if self.sio.limits is not None:
            self.sio.limits.forget(sid)
        self.registry.remove(sid)

    async def _room_unknown(self, event: str, namespace: str, sid: str, *args: Any) -> Any:
        exc = InvalidPayload(
            f"unknown event {event!r} on {namespace!r}: a room namespace only delivers "
            "the room's events (send commands on '/')",
            {"event": event},
        )
        if not _ack_requested.get():
            await self.sio.emit("error", as_error_event(exc), to=sid, namespace=namespace)
        return as_ack(exc)

    async def _recoverable(self, auth: Any, user_id: str) -> StoredSession | None:
        pid = auth.get("pid") if isinstance(auth, dict) else None
        log_ = self._svc().recovery
        if not isinstance(pid, str) or not pid or len(pid) > 64 or log_ is None:
            return None
        try:
            session = await log_.load(pid)
        except Exception as exc:  # the database is away: connect, without recovery
            log.warning("recovery_unavailable", error=repr(exc))
            return None
        if session is None or session.user_id != user_id:
            return None
        return session

    async def _recover(
        self,
        sid: str,
        user: UserRef,
        session: StoredSession,
        offset: recovery.Offset | None,
        lock: asyncio.Lock,
    ) -> None:
        try:
            await self._restore(sid, user, session, offset)
        except SlowConsumer:  # the connection is being ended; its next connect recovers
            log.info("recovery_stopped_slow_consumer", sid=sid)
        except Exception:
            log.exception("recovery_failed", sid=sid)
        finally:
            lock.release()

    async def _restore(
        self, sid: str, user: UserRef, session: StoredSession, offset: recovery.Offset | None
    ) -> None:
        """Subscribe ``sid`` again to its session's rooms and replay what it missed."""
        svc = self._svc()
        assert svc.recovery is not None
        room_ids = list(session.rooms)
        if not room_ids:
            return
        for room_id in room_ids:  # everything held from here, all rooms together
            self.delivery.open_gate(room_name(room_id), sid, namespace=_ns.get())
            await self.sio.enter_room(sid, room_name(room_id), namespace=_ns.get())
        base = offset.base if offset is not None else None
        try:
            positions = await svc.recovery.resolve(base, room_ids)
        except Exception as exc:
            for room_id in room_ids:
                self.delivery.close_gate(room_name(room_id), sid, namespace=_ns.get(), batch=False)
                await self.sio.leave_room(sid, room_name(room_id), namespace=_ns.get())
                await self._subscribe_failed(sid, room_id, exc)
            return
        plan: dict[str, tuple[int, int, Visibility]] = {}
        base_text = ""
        for room_id in room_ids:
            position = positions[room_id]
            if position.base_usable and offset is not None:
                base_text = offset.base_text
            after = recovery.after_for(
                room_id,
                session.rooms[room_id],
                offset,
                head=position.head,
                next_unsent=position.next_unsent,
                base_usable=position.base_usable,
            )
            try:
                # Re-authorised as a new subscribe would be: a removed
                # participant gets nothing of the room.
                await svc.rooms.readable(room_id, user.id, "room:subscribe", head=position.head)
                member = await svc.store.member_after(room_id, user.id, after)
            except Exception as exc:
                self.delivery.close_gate(room_name(room_id), sid, namespace=_ns.get(), batch=False)
                await self.sio.leave_room(sid, room_name(room_id), namespace=_ns.get())
                await self._subscribe_failed(sid, room_id, exc)
                continue
            plan[room_id] = (after, position.head, Visibility(user.id, member=member))
        sent: dict[str, Outlet] = {}
        for room_id, (after, head, visibility) in plan.items():
            out = sent[room_id] = Outlet(
                self.delivery, sid, namespace=_ns.get(), batch=False, offsets=(base_text, room_id)
            )
            if after < head:
                REPLAYS.labels("recovery").inc()
            async with contextlib.aclosing(
                replay.pages(svc.store, room_id, after, head, _REPLAY_PAGE, self.recent)
            ) as log_pages:
                async for page in log_pages:
                    if sid not in self.registry.users:
                        break
                    # Not capped: a recovered client (seed 003's, unmodified) cannot
                    # page, so the server pages the log itself, paced like a
                    # subscribe's replay (docs/decisions/0019).
                    await self._send_paced(sid, out, page, visibility, batch=False)
        live = Outlet(self.delivery, sid, namespace=_ns.get(), batch=False)
        own = {r: (head, visibility) for r, (_, head, visibility) in plan.items()}
        while held := self.registry.take(sid):
            self._release(held, own, live)
        for room_id, (_, head, _) in plan.items():
            self.delivery.close_gate(
                room_name(room_id),
                sid,
                namespace=_ns.get(),
                batch=False,
                floor=max(head, sent[room_id].last_seq),
            )
        kept: dict[str, int] = {}
        for room_id, (_, head, visibility) in plan.items():
            if not visibility.member:  # removed meanwhile
                await self.sio.leave_room(sid, room_name(room_id), namespace=_ns.get())
                continue
            kept[room_id] = session.rooms[room_id]
            whole = ReplayCut(truncated=False, next_after=head)
            await self._subscribed_notice(sid, room_id, head, sent[room_id].count, whole)
            await self.live.subscribed(room_id, sid, user)
        if sid in self._session_rooms:
            self._session_rooms[sid] = kept
        if kept != session.rooms:
            await self._save_session(sid, user)
        log.info("socket_recovered", sid=sid, user_id=user.id, rooms=len(kept))

    def _release(
        self,
        held: list[tuple[str, str, Any]],
        own: dict[str, tuple[int, Visibility]],
        live: Outlet,
        outlets: dict[str, Outlet] | None = None,
    ) -> None:
        """Send what was held for a socket, in order: its replayed rooms' events above
        their heads (and visible), its other rooms' events as they came."""
        for target, event, data in held:
            room_id = target.removeprefix("room:")
            mine = own.get(room_id)
            if mine is not None:
                head, visibility = mine
                seq = seq_of(data)
                if not seq:  # a notice (presence, typing): never in a frame
                    live.send([(event, data)])
                    continue
                if seq <= head or not visibility.admit(event, payload_of(data)):
                    continue
                (outlets or {}).get(room_id, live).send([(event, data)])
            else:
                live.send([(event, data)])

    async def _save_session(self, sid: str, user: UserRef) -> None:
        pid = self.sio.pids.get(sid)
        rooms = self._session_rooms.get(sid)
        log_ = self._svc().recovery
        if pid is None or rooms is None or log_ is None:
            return
        try:
            await log_.save(pid, user.id, dict(rooms))
        except Rejected as exc:  # the subscription works; only its recovery is at risk
            log.warning("session_save_failed", sid=sid, error=exc.message)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        self._subscribing.pop(sid, None)
        self._session_rooms.pop(sid, None)
        self.sio.pids.pop(sid, None)  # the stored session stays, for a recovery
        self.sessions.close(sid)
        if self.sio.limits is not None:
            self.sio.limits.forget(sid)
        self.registry.remove(sid)
        await self.live.disconnected(sid)  # offline and stopped typing, to the others
        log.info("socket_disconnected", sid=sid, reason=str(reason))

    # ---------------------------------------------------------------- handlers

    async def _subscribe(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> Any:
        request = parse(SubscribeRequest, args)
        _ns.set("/")
        # One subscribe at a time per socket: a second one (same room or not)
        # waits for the first, so two gates never hold the same live events and
        # a replay's offsets never interleave with another's (recovery.py).
        lock = self._subscribing.setdefault(sid, asyncio.Lock())
        async with lock:
            if sid not in self.registry.users:
                # The socket was ended while this waited its turn (a slow consumer
                # with subscribes queued): there is nobody to subscribe or answer.
                return {"roomId": None}
            return await self._subscribe_locked(sid, user, request, _ack_now.get())

    async def _subscribe_locked(
        self, sid: str, user: UserRef, request: SubscribeRequest, ack_now: AckNow
    ) -> Any:
        room = room_name(request.room_id)
        store = self._svc().store
        # Already subscribed: a refused or failed re-subscribe keeps that subscription.
        was_in = self.sio.in_room(sid, room, _ns.get())
        was_batch = self.registry.is_batch(room, sid)
        if was_in and request.last_seq is None:
            # Nothing to replay (a client resubscribing on `connect` after a
            # recovery): the socket stays live as it is, nothing is sent twice.
            head = await store.head(request.room_id)
            try:
                state, _ = await self._svc().rooms.readable(
                    request.room_id, user.id, "room:subscribe", head=head
                )
            except (PermissionDenied, RoomNotFound) as exc:
                await self._out_of_room(sid, request.room_id, exc)
                raise
            if request.batch != was_batch:
                self.delivery.close_gate(room, sid, namespace=_ns.get(), batch=request.batch)
            whole = ReplayCut(truncated=False, next_after=head)
            await ack_now(self._subscribe_ack(request.room_id, state.info, head, head, 0, whole))
            await self._subscribed_notice(sid, request.room_id, head, 0, whole)
            return {"roomId": request.room_id}
        self.delivery.open_gate(room, sid, namespace=_ns.get())
        # The socket's live position now: its replay's offsets say "live up to here".
        base = self.delivery.position or ""
        try:
            if not was_in:
                await self.sio.enter_room(sid, room, namespace=_ns.get())
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
            # Inline up to cut.next_after; the client pages the rest with room:replay,
            # so one subscribe's work (and what its gate holds) is bounded.
            cut = replay_cut(after, head, self.subscribe_replay_max)
            count = 0
            member_at_head = member
            inline = []
            if after < head:
                REPLAYS.labels("subscribe").inc()
                changes = await store.membership_events(request.room_id, user.id, after, head)
                inline = [c for c in changes if c[0] <= cut.next_after]
                count = visible_count(member, after, cut.next_after, inline)
                member_at_head = member_at_end(member, changes)
        except (PermissionDenied, RoomNotFound) as exc:
            # Out of the room: whatever the socket had of it is not owed any more.
            self._abandon(room, sid, was_in=False, was_batch=False)
            if was_in or request.last_seq is not None:  # it was following the room
                await self._out_of_room(sid, request.room_id, exc)
            else:
                await self.sio.leave_room(sid, room, namespace=_ns.get())
            raise
        except BaseException:
            self._abandon(room, sid, was_in=was_in, was_batch=was_batch)
            if not was_in:
                await self.sio.leave_room(sid, room, namespace=_ns.get())
            raise
        # Online in the room from here (a `typing:start` right after the ack is
        # accepted); the notice reaches this socket after its replay.
        await self.live.subscribed(request.room_id, sid, user)
        # The ack goes first: handlers added in its callback see the replay.
        await ack_now(self._subscribe_ack(request.room_id, state.info, head, after, count, cut))
        visibility = Visibility(user.id, member=member)
        out = Outlet(
            self.delivery,
            sid,
            namespace=_ns.get(),
            batch=request.batch,
            offsets=(base, request.room_id) if self.recovery else None,
        )
        try:
            if request.batch and member and not inline:
                # Every replayed event is visible (a member throughout): each page
                # goes out as the frame the database (or memory) joined.
                await self._send_frames(sid, out, request.room_id, after, cut.next_after)
            else:
                async with contextlib.aclosing(
                    replay.pages(
                        store, request.room_id, after, cut.next_after, _REPLAY_PAGE, self.recent
                    )
                ) as log_pages:
                    async for page in log_pages:
                        if sid not in self.registry.users:  # the socket left: stop reading
                            break
                        await self._send_paced(sid, out, page, visibility, batch=request.batch)
            if cut.truncated:
                # Live events follow the head, not the cut: the client pages the
                # seqs in between, and what it may see of the live ones is the
                # membership at the head.
                visibility = Visibility(user.id, member=member_at_head)
            # Flush what arrived live meanwhile (this room's above the head, the
            # socket's other rooms' as they came, in order); the gate stays open
            # until a take() finds nothing, with no await in between, so no
            # broadcast slips past.
            live = Outlet(self.delivery, sid, namespace=_ns.get(), batch=False)
            own = {request.room_id: (head, visibility)}
            while held := self.registry.take(sid):
                self._release(held, own, live, {request.room_id: out})
        except Exception as exc:
            # The ack said yes; the replay could not finish (the database went away).
            # The client hears it as an `error` event naming the subscribe.
            self._abandon(room, sid, was_in=was_in, was_batch=was_batch)
            if not was_in:
                await self.sio.leave_room(sid, room, namespace=_ns.get())
            await self._subscribe_failed(sid, request.room_id, exc)
            return {"roomId": None}
        except BaseException:
            self._abandon(room, sid, was_in=was_in, was_batch=was_batch)
            raise
        self.delivery.close_gate(
            room, sid, namespace=_ns.get(), batch=request.batch, floor=max(head, out.last_seq)
        )
        self.delivery.positions.subscribed(
            room,
            max(head, out.last_seq),
            alone=len(self.sio.manager.rooms.get("/", {}).get(room, ())) == 1,
        )
        if not visibility.member:  # removed while we were replaying
            await self.sio.leave_room(sid, room, namespace=_ns.get())
            await self._subscribe_failed(
                sid,
                request.room_id,
                PermissionDenied(
                    "you are no longer a member of this room",
                    {"action": "room:subscribe", "roomId": request.room_id},
                ),
            )
            return {"roomId": None}
        rooms = self._session_rooms.get(sid)
        if rooms is not None:
            # Recoverable from now (frames are not: docs/decisions/0009).
            if request.batch:
                rooms.pop(request.room_id, None)
            else:
                rooms[request.room_id] = after
            await self._save_session(sid, user)
        await self._subscribed_notice(sid, request.room_id, head, count, cut)
        return {"roomId": request.room_id}

    async def _send_frames(
        self, sid: str, out: Outlet, room_id: str, after: int, up_to: int
    ) -> None:
        """Queue ``after < seq <= up_to`` as ready frames, each once the socket's output
        has drained (SLOW_CONSUMER if it stops reading): ``_send_paced``'s pages,
        without an object per event (docs/decisions/0025)."""
        store = self._svc().store
        frames = replay.frames(store, room_id, after, up_to, _REPLAY_PAGE, self.recent)
        async with contextlib.aclosing(frames):
            async for frame in frames:
                if sid not in self.registry.users:  # the socket left: stop reading
                    break
                await self.sio.drained(sid, _ns.get())
                out.send_frame(*frame)

    async def _send_paced(
        self, sid: str, out: Outlet, page: list[Envelope], visibility: Visibility, *, batch: bool
    ) -> None:
        """Queue a page of replayed events, a run at a time, each once the socket's
        output has drained (SLOW_CONSUMER if it stops reading). A batch subscriber
        gets the page as one frame."""
        step = max(len(page) if batch else _PACE_EVENTS, 1)
        for start in range(0, len(page), step):
            await self.sio.drained(sid, _ns.get())
            part = page[start : start + step]
            out.send(
                [(e.event, e.payload) for e in part if visibility.admit(e.event, e.payload)],
                replayed=True,
            )

    async def _subscribed_notice(
        self, sid: str, room_id: str, head: int, count: int, cut: ReplayCut
    ) -> None:
        # The cut is in the notice too: a /rooms/{roomId} socket has no ack to read it from.
        await self.sio.emit(
            "room:subscribed",
            {
                "roomId": room_id,
                "headSeq": head,
                "replayed": count,
                "replay": {"truncated": cut.truncated, "nextAfter": cut.next_after},
            },
            to=sid,
            namespace=_ns.get(),
        )

    @staticmethod
    def _subscribe_ack(
        room_id: str, info: Any, head: int, after: int, count: int, cut: ReplayCut
    ) -> Any:
        return SubscribeAck(
            room=info,
            data=SubscribeData(
                room_id=room_id,
                room=info,
                head_seq=head,
                from_seq=after,
                replaying=count,
                replay=cut,
            ),
        )

    def _abandon(self, room: str, sid: str, *, was_in: bool, was_batch: bool) -> None:
        """Close a failed subscribe's gate. A socket that was subscribed before keeps
        its subscription: what the gate held is live traffic it is owed, sent now."""
        held = self.registry.take(sid)
        if not was_in:  # this room's held events are not owed: it was not subscribed
            held = [h for h in held if h[0] != room]
        own_outlet = Outlet(self.delivery, sid, namespace=_ns.get(), batch=was_batch)
        live = Outlet(self.delivery, sid, namespace=_ns.get(), batch=False)
        for target, event, data in held:
            (own_outlet if target == room else live).send([(event, data)])
        self.delivery.close_gate(
            room, sid, namespace=_ns.get(), batch=was_batch if was_in else False
        )

    async def _out_of_room(self, sid: str, room_id: str, exc: Rejected) -> None:
        """Refused a refill or a re-subscribe because the user is out of the room
        (removed, or the room is gone): the socket leaves it and is told once, so a
        client that was following it stops asking instead of retrying."""
        room = room_name(room_id)
        namespace = _ns.get()
        if self.sio.in_room(sid, room, namespace):
            await self.sio.leave_room(sid, room, namespace=namespace)
        reason = "room_deleted" if isinstance(exc, RoomNotFound) else "not_a_member"
        await self.sio.emit(
            "room:unsubscribed", {"roomId": room_id, "reason": reason}, to=sid, namespace=namespace
        )

    async def _subscribe_failed(self, sid: str, room_id: str, exc: BaseException) -> None:
        payload = as_error_event(exc)
        payload["details"] = {**payload["details"], "action": "room:subscribe", "roomId": room_id}
        await self.sio.emit("error", payload, to=sid, namespace=_ns.get())

    async def _unsubscribe(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> Any:
        request = parse(UnsubscribeRequest, args)
        room = room_name(request.room_id)
        self.registry.close_gate(room, sid)
        await self.sio.leave_room(sid, room, namespace=_ns.get())
        rooms = self._session_rooms.get(sid)
        if rooms is not None and rooms.pop(request.room_id, None) is not None:
            await self._save_session(sid, user)
        await self.sio.emit(
            "room:unsubscribed", {"roomId": request.room_id}, to=sid, namespace=_ns.get()
        )
        return {"roomId": request.room_id}

    async def _replay(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> Any:
        request = parse(ReplayRequest, args)
        try:
            _, head = await self._svc().rooms.readable(request.room_id, user.id, "room:replay")
        except (PermissionDenied, RoomNotFound) as exc:
            await self._out_of_room(sid, request.room_id, exc)
            raise
        store = self._svc().store
        page = await store.read(request.room_id, request.after_seq, request.limit)
        REPLAYS.labels("replay").inc()
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

    async def _answer(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> Any:
        request = parse(AnswerRequest, args)
        return await self._svc().quiz.submit(
            user, request.question_id, request.answer, room_id=request.room_id
        )

    async def _mark_read(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> Any:
        request = parse(MarkReadRequest, args)
        outcome = await self._svc().notifications.mark_read(user, request.notification_id)
        return {
            "notificationId": request.notification_id,
            "read": True,
            "headSeq": outcome.result.version,
        }

    async def _notification_replay(self, sid: str, user: UserRef, args: tuple[Any, ...]) -> Any:
        """The caller's notifications after ``afterSeq``: what a reconnecting client missed."""
        request = parse(NotificationReplayRequest, args)
        stream = inbox_stream(user.id)
        store = self._svc().store
        page = await store.read(stream, request.after_seq, request.limit)
        return {
            "events": page,
            "headSeq": await store.head(stream),
            "nextAfter": seq_of(page[-1].payload) if page else request.after_seq,
        }

    def start(self) -> None:
        """Start listening for broadcasts now, not at the first socket's connect.

        python-socketio initialises its client manager (with Redis: the pub/sub
        listener task) on the first Engine.IO connection. A node whose only
        readers are SSE streams has no socket, so its streams would never hear
        another node's broadcasts. Same flag and call as
        ``AsyncServer._handle_eio_connect`` (tests/contract/test_socketio_internals.py).
        """
        if not self.sio.manager_initialized:
            self.sio.manager_initialized = True
            self.sio.manager.initialize()

    async def close(self) -> None:
        """Stop the Redis listener and close the Redis connections (nothing without Redis).

        python-socketio never closes them; a node that broadcast through Redis
        (relay, presence, typing) would otherwise leave them open at shutdown.
        """
        if isinstance(self.sockets, RedisSockets):
            await self.sockets.close()

    def redis_status(self) -> dict[str, object] | None:
        """What ``/health`` says about Redis (None without Redis)."""
        sockets = self.sockets
        return sockets.redis_channel.link.status() if isinstance(sockets, RedisSockets) else None


def create_gateway(**options: Any) -> Gateway:
    return Gateway(**options)
