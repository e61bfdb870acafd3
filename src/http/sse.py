"""Server-Sent Events: a room's log (or the caller's notifications), then live, over plain HTTP.

``GET /api/rooms/{roomId}/stream`` and ``GET /api/notifications/stream`` answer
``text/event-stream``: one SSE event per log event (``id:`` its seq, ``event:``
its name, ``data:`` the payload the sockets get). The rules are
``room:subscribe``'s: the same permission check, the same read policy
(``service.visibility``), no ``Last-Event-ID`` means "from now on", and one with
it replays what came after that seq, then goes live.

No hole, no duplicate: the stream listens to the node's live feed
(``service.feed``, fed by the gateway's local delivery) *before* it reads the
head, so whatever is committed after the head reaches its queue; the replay
reads the log up to the head, and live events at or below the last seq sent
are dropped. A live seq beyond the next one expected (a broadcast this node
missed) is read back from the log before it is sent.

The stream ends with a typed ``error`` event (the one error envelope's
``{code, message, details}``) when the reader is removed from the room
(PERMISSION_DENIED), when the room is deleted (ROOM_NOT_FOUND), or when the
reader falls more than ``queue_events`` live events behind (SERVICE_UNAVAILABLE,
``details.reason = "slowReader"``: memory stays bounded; resume with
``Last-Event-ID``). A write the reader does not take within ``write_timeout``
closes the connection. An idle stream gets a ``: keep-alive`` comment every
``heartbeat`` seconds.

Tokens: ``Authorization: Bearer …``, or ``?access_token=`` for ``EventSource``,
which cannot set headers (docs/api.md says what that costs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import HeaderParameter, QueryParameter
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

from roomcast import wire
from roomcast.domain.errors import (
    AuthenticationFailed,
    ErrorCode,
    InvalidPayload,
    PermissionDenied,
    Rejected,
    RoomNotFound,
    ServiceUnavailable,
)
from roomcast.domain.notifications import inbox_stream
from roomcast.http.deps import PathId
from roomcast.http.errors import STATUS
from roomcast.http.headers import header
from roomcast.http.openapi import ANY_TOKEN, AUTHENTICATED, answers
from roomcast.outbox.codec import Envelope
from roomcast.outbox.store import EventStore
from roomcast.service.feed import LiveFeed
from roomcast.service.rooms import RoomService
from roomcast.service.visibility import Visibility, seq_of
from roomcast.tokens import Claims

__all__ = [
    "ROUTES",
    "EventStream",
    "StreamLimits",
    "StreamServices",
    "event_stream",
    "notification_stream",
    "room_stream",
]

log = structlog.get_logger("roomcast.http")

_PAGE = 500
_HEARTBEAT = b": keep-alive\n\n"
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # nginx buffers responses unless told not to; a buffered stream is not live.
    (b"x-accel-buffering", b"no"),
]


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What one SSE stream may cost (``ROOMCAST_SSE_*``)."""

    heartbeat: float = 15.0
    queue_events: int = 1000
    write_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class StreamServices:
    """What the SSE routes need: the app's services, the node's feed and the limits."""

    store: EventStore
    rooms: RoomService
    feed: LiveFeed
    limits: StreamLimits
    authenticate: Callable[[str], Claims]
    """Verifies a token and counts the request against the caller's REST limit."""


def event_stream(events: list[tuple[int, str, Any]]) -> bytes:
    """SSE frames for ``(seq, event, payload)``; payloads are JSON (one line each)."""
    encode = msgspec.json.encode
    return b"".join(
        b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, event.encode(), encode(payload))
        for seq, event, payload in events
    )


def _error_frame(exc: Rejected) -> bytes:
    error = wire.failure(exc).error
    body = msgspec.json.encode(
        {"code": error.code.value, "message": error.message, "details": error.details}
    )
    return b"event: error\ndata: %s\n\n" % body


class _Pending:
    """Live events waiting for one stream's writer; at most ``bound`` of them."""

    __slots__ = ("_bound", "_ready", "events", "overflowed", "stop")

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._ready = asyncio.Event()
        self.events: deque[tuple[int, str, Any]] = deque()
        self.overflowed = False
        self.stop: Callable[[], None] = lambda: None

    def __call__(self, event: str, payload: Any, seq: int) -> None:
        if self.overflowed:
            return
        if len(self.events) >= self._bound:
            # Past the bound nothing more is kept: this stream stops listening and
            # its writer ends it as soon as it gets to run.
            self.overflowed = True
            self.events.clear()
            self.stop()
        else:
            self.events.append((seq, event, payload))
        self._ready.set()

    async def take(self, within: float) -> list[tuple[int, str, Any]] | None:
        """What has arrived (waiting up to ``within`` seconds); None if nothing did."""
        if not self.events and not self.overflowed:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._ready.wait()
        if not self.events:
            return None
        taken = list(self.events)
        self.events.clear()
        return taken


class _Source:
    """One stream's log: who reads it, where it starts, what they may see."""

    def __init__(
        self, services: StreamServices, stream_id: str, user_id: str, after: int | None
    ) -> None:
        self.services = services
        self.stream_id = stream_id
        self.user_id = user_id
        self.requested = after
        self.policy: Visibility | None = None
        """None: every event is the reader's (their own notifications)."""

    async def open(self) -> int:
        """Check the reader may read, set the policy up; the stream's head."""
        store = self.services.store
        head = await store.head(self.stream_id)
        self._check_after(head)
        return head

    def _check_after(self, head: int) -> None:
        if self.requested is not None and self.requested > head:
            # A seq this stream never reached: the client's history is not this log's.
            raise InvalidPayload(
                f"Last-Event-ID {self.requested} is ahead of the stream's head {head}",
                {"lastEventId": self.requested, "headSeq": head},
            )

    def end(self, event: str, payload: Any) -> Rejected | None:
        """The error that ends the stream after this (sent) event, if it is one."""
        return None


class _RoomSource(_Source):
    async def open(self) -> int:
        store = self.services.store
        head, member = await store.head_and_member(self.stream_id, self.user_id, self.requested)
        rooms = self.services.rooms
        await rooms.readable(self.stream_id, self.user_id, "room:subscribe", head=head)
        self._check_after(head)
        self.policy = Visibility(self.user_id, member=member)
        return head

    def end(self, event: str, payload: Any) -> Rejected | None:
        if event == "room:deleted":
            return RoomNotFound("the room was deleted", {"roomId": self.stream_id})
        if self.policy is not None and not self.policy.member:
            return PermissionDenied(
                "you are no longer a member of this room",
                {"action": "room:subscribe", "roomId": self.stream_id},
            )
        return None


class EventStream(ASGIResponse):
    """The SSE response: checks, replay, then live, until the reader or the room goes."""

    def __init__(self, source: _Source) -> None:  # ASGIResponse.__init__ is not needed
        self._source = source
        self.status_code = 200

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source = self._source
        pending = _Pending(source.services.limits.queue_events)
        # Listen before the head is read: every event after it reaches the queue.
        pending.stop = source.services.feed.listen(f"room:{source.stream_id}", pending)
        try:
            try:
                head = await source.open()
            except Rejected as exc:
                await _refuse(send, exc)
                return
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            writer = asyncio.ensure_future(_Writer(source, pending, send).run(head))
            gone = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait({writer, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (writer, gone):
                    task.cancel()
                await asyncio.gather(writer, gone, return_exceptions=True)
            if writer.done() and not writer.cancelled() and writer.exception() is not None:
                log.error("sse_stream_failed", exc_info=writer.exception())
        finally:
            pending.stop()


class _Writer:
    def __init__(self, source: _Source, pending: _Pending, send: Send) -> None:
        self.source = source
        self.pending = pending
        self._send = send
        self.last = 0
        """The last seq read (sent, or hidden by the policy)."""
        self.replaying = False

    async def write(self, body: bytes, *, more: bool = True) -> None:
        timeout = self.source.services.limits.write_timeout
        async with asyncio.timeout(timeout):
            await self._send({"type": "http.response.body", "body": body, "more_body": more})

    async def run(self, head: int) -> None:
        source = self.source
        self.last = head if source.requested is None else source.requested
        try:
            # The replay: the log up to the head this stream read. A leave in it
            # followed by a rejoin is history; only the state at the head counts.
            self.replaying = True
            await self._read_up_to(head)
            self.replaying = False
            ended = self.source.end("", None)
            if ended is not None:  # removed between the check and the head
                await self._finish(ended)
                return
            heartbeat = source.services.limits.heartbeat
            while True:
                live = await self.pending.take(heartbeat)
                if live is None:
                    if self.pending.overflowed:
                        await self._finish(
                            ServiceUnavailable(
                                "this stream fell too far behind; reconnect with Last-Event-ID",
                                {"reason": "slowReader", "lastEventId": self.last},
                            )
                        )
                        return
                    await self.write(_HEARTBEAT)
                    continue
                if await self._live(live):
                    return
        except TimeoutError:
            # The reader took nothing for write_timeout: ending without the final
            # chunk makes uvicorn close the connection.
            log.info("sse_write_timeout", stream_id=source.stream_id, last_seq=self.last)

    async def _live(self, live: list[tuple[int, str, Any]]) -> bool:
        """Send what arrived live; True once the stream has ended."""
        run: list[tuple[int, str, Any]] = []
        for seq, event, payload in live:
            if seq <= self.last:
                continue  # the replay (or a relay publishing again) already sent it
            if seq > self.last + 1:
                # A broadcast this node missed: the log has it.
                if await self._flush(run) or await self._read_up_to(seq - 1):
                    return True
                run = []
            self.last = seq
            run.append((seq, event, payload))
        return await self._flush(run)

    async def _read_up_to(self, until: int) -> bool:
        store = self.source.services.store
        while self.last < until:
            page = await store.read(self.source.stream_id, self.last, min(_PAGE, until - self.last))
            if not page:
                break
            if await self._flush_envelopes(page):
                return True
        return False

    async def _flush_envelopes(self, page: list[Envelope]) -> bool:
        events: list[tuple[int, str, Any]] = []
        for envelope in page:
            seq = seq_of(envelope.payload)
            self.last = seq
            events.append((seq, envelope.event, envelope.payload))
        return await self._flush(events)

    async def _flush(self, events: list[tuple[int, str, Any]]) -> bool:
        """Write ``events`` the policy admits; True if one of them ended the stream."""
        if not events:
            return False
        policy = self.source.policy
        shown: list[tuple[int, str, Any]] = []
        ended: Rejected | None = None
        for seq, event, payload in events:
            if policy is not None and not policy.admit(event, payload):
                continue
            shown.append((seq, event, payload))
            if not self.replaying:
                ended = self.source.end(event, payload)
                if ended is not None:
                    break
        body = event_stream(shown)
        if ended is not None:
            await self.write(body + _error_frame(ended), more=False)
            return True
        if body:
            await self.write(body)
        return False

    async def _finish(self, exc: Rejected) -> None:
        await self.write(_error_frame(exc), more=False)


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _refuse(send: Send, exc: Rejected) -> None:
    body = wire.encode(wire.failure(exc))
    await send(
        {
            "type": "http.response.start",
            "status": STATUS[exc.code],
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


# ---------------------------------------------------------------- the routes

_MAX_SEQ = 2**62

AccessToken = Annotated[
    str | None,
    QueryParameter(
        name="access_token",
        description="The bearer token, for clients that cannot set Authorization "
        "(EventSource). It ends up in URLs: see docs/api.md.",
        max_length=8192,
    ),
]
LastEventIdQuery = Annotated[
    int | None,
    QueryParameter(
        name="lastEventId",
        ge=0,
        le=_MAX_SEQ,
        description="Resume after this seq; the Last-Event-ID header takes precedence.",
    ),
]
LastEventIdHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        description="The last seq received (EventSource sends it on reconnect).",
        required=False,
    ),
]


_STREAM_ERRORS = AUTHENTICATED | {ErrorCode.NOT_FOUND}
"""NOT_FOUND: live streams are off on this app."""
_STREAM_BODY = (
    "One SSE event per log event: `id:` its seq, `event:` its name, `data:` its payload "
    "(an Envelope's `payload`); `: keep-alive` comments when idle; a last `error` event "
    "with the error envelope's {code, message, details} when the stream is ended."
)


def _stream_services(request: Request[Any, Any, Any]) -> StreamServices:
    found: Callable[[Request[Any, Any, Any]], StreamServices] = request.app.state["stream_services"]
    return found(request)


def _claims(request: Request[Any, Any, Any], services: StreamServices, query: str | None) -> Claims:
    value = header(request.scope, b"authorization")
    if value is not None:
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed(
                "Authentication failed: expected 'Authorization: Bearer <token>'"
            )
        return services.authenticate(token.strip())
    if query:
        return services.authenticate(query)
    raise AuthenticationFailed(
        "Authentication failed: missing bearer token (Authorization header or access_token)"
    )


def _after(header_value: str | None, query: int | None) -> int | None:
    # EventSource reconnects to the same URL with the header: the header is newer.
    if header_value is not None and header_value.strip():
        text = header_value.strip()
        if not text.isdigit() or len(text) > 19 or int(text) > _MAX_SEQ:
            raise InvalidPayload(
                "Last-Event-ID must be a seq (a non-negative integer)",
                {"header": "Last-Event-ID"},
            )
        return int(text)
    return query


@get(
    "/api/rooms/{room_id:str}/stream",
    summary="The room's events as Server-Sent Events, resumable with Last-Event-ID",
    tags=["rooms"],
    opt=answers(
        _STREAM_ERRORS | {ErrorCode.ROOM_NOT_FOUND, ErrorCode.PERMISSION_DENIED},
        text=True,
        media_type="text/event-stream",
        description=_STREAM_BODY,
        security=(*ANY_TOKEN, frozenset({"accessTokenQuery"})),
    ),
)
async def room_stream(
    room_id: PathId,
    request: Request[Any, Any, Any],
    access_token: AccessToken = None,
    last_event_id: LastEventIdQuery = None,
    last_event_header: LastEventIdHeader = None,
) -> EventStream:
    services = _stream_services(request)
    claims = _claims(request, services, access_token)
    if ":" in room_id:  # other streams (inboxes) are not rooms
        raise RoomNotFound("room not found", {"roomId": room_id})
    after = _after(last_event_header, last_event_id)
    return EventStream(_RoomSource(services, room_id, claims.user.id, after))


@get(
    "/api/notifications/stream",
    summary="The caller's notifications as Server-Sent Events, resumable with Last-Event-ID",
    tags=["notifications"],
    opt=answers(
        _STREAM_ERRORS,
        text=True,
        media_type="text/event-stream",
        description=_STREAM_BODY,
        security=(*ANY_TOKEN, frozenset({"accessTokenQuery"})),
    ),
)
async def notification_stream(
    request: Request[Any, Any, Any],
    access_token: AccessToken = None,
    last_event_id: LastEventIdQuery = None,
    last_event_header: LastEventIdHeader = None,
) -> EventStream:
    services = _stream_services(request)
    claims = _claims(request, services, access_token)
    after = _after(last_event_header, last_event_id)
    return EventStream(_Source(services, inbox_stream(claims.user.id), claims.user.id, after))


ROUTES: list[HTTPRouteHandler] = [room_stream, notification_stream]
"""The route handlers, for ``create_app``."""
