"""engine.io's transport, hardened: every client frame checked, every socket's output bounded.

**Frames in.**
engine.io decodes a WebSocket frame outside any error handling: a text frame that
is empty or starts with no packet type ends its receive loop with a traceback,
and an unknown packet type is ignored, leaving the connection open. Here every
frame is checked before engine.io sees it; a frame that is not an Engine.IO v4
packet ends the connection (the client's own fault, one rate-limited log line).

Installed per server as ``eio._async["websocket"]`` (pinned private part, see
docs/architecture.md; covered by tests/e2e/test_hostile_packets.py).

**Bytes out.** engine.io queues what a socket is sent on an unbounded
``asyncio.Queue``; a client that never reads kept every broadcast and every
replay there (one socket with 50 subscribes of a 20,000-event room: +560 MB).
``OutboundQueue`` counts the bytes waiting in it; past its high-water mark it
drops what waits and calls ``on_overflow``, which ends the connection with a
typed reason (gateway/server.py). The client reconnects and resubscribes from
its last seq, as after any transport loss (ADR 0011).

**Long-polling.** Over polling, only a GET takes output off the queue. A session
that never GETs (while answering pings with POSTs) would be kept forever:
``CheckedSocket`` notices when no GET has been in flight for a configured time.
A polling session ended as a slow consumer stays reachable (``farewell``) until
its next GET has fetched the notice and the CLOSE, or the grace period ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from engineio import exceptions as eio_exceptions
from engineio import payload as eio_payload
from engineio.async_drivers.asgi import WebSocket
from engineio.async_socket import AsyncSocket

from roomcast.gateway.guard import QuietLog
from roomcast.queues import LeanQueue

__all__ = ["CheckedSocket", "CheckedWebSocket", "OutboundQueue", "packet_bytes", "valid_frame"]

# engine.io refuses a polling POST of more than 16 packets (and answered it 200 OK,
# dropping them all): browsers batch every buffered packet into one POST. Its
# size stays bounded by the frame limit (max_http_buffer_size).
eio_payload.Payload.max_decode_packets = 512

_TYPES = frozenset("123456")
"""Engine.IO v4 packet types a client may send: close, ping, pong, message, upgrade, noop."""

_log = QuietLog("socket_frame_malformed")


def valid_frame(frame: str | bytes) -> bool:
    """Whether ``frame`` decodes as an Engine.IO v4 packet (binary frames are messages)."""
    if isinstance(frame, bytes | bytearray):
        return True
    if not frame or frame[0] not in _TYPES:
        return False
    # Only a message carries data; the others carry nothing or the upgrade "probe".
    return frame[0] == "4" or frame[1:] in ("", "probe")


class CheckedSocket(AsyncSocket):  # type: ignore[misc]
    """engine.io's socket whose polling POST that does not decode ends the session,
    and whose polling client must keep a GET in flight.

    engine.io logs such a POST with a traceback and answers 200 OK, the packets
    lost; here it is one rate-limited line, HTTP 400, and the session is closed.
    Set as the socket's class right after engine.io creates it (gateway/server.py),
    which then calls ``watch_polls``.
    """

    farewell = False
    """Closed, but its next GET still fetches what is queued (the SLOW_CONSUMER notice
    and the CLOSE): ``_EngineServer._get_socket`` hands it out while this is set."""
    _polls = 0
    _idle: asyncio.TimerHandle | None = None
    _idle_after = 0.0
    _on_idle: Callable[[], None] | None = None

    def watch_polls(self, timeout: float, on_idle: Callable[[], None]) -> None:
        """Call ``on_idle`` once no GET has been in flight for ``timeout`` seconds.

        A long-polling client always has one waiting (it sends the next as soon as
        one is answered); a WebSocket's whole life is one GET, so it never idles.
        """
        self._idle_after = timeout
        self._on_idle = on_idle
        self._arm()

    def _arm(self) -> None:
        if self._on_idle is not None and not self.closed:
            self._idle = asyncio.get_running_loop().call_later(self._idle_after, self._idled)

    def unwatch_polls(self) -> None:
        """Stop watching (the session is over)."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idled(self) -> None:
        self._idle = None
        if self.closed or self.upgrading or self.upgraded or self._on_idle is None:
            return
        self._on_idle()

    async def handle_get_request(self, environ: Any) -> Any:
        self._polls += 1
        self.unwatch_polls()
        try:
            return await super().handle_get_request(environ)
        finally:
            self._polls -= 1
            if not self._polls:
                self._arm()

    async def send(self, pkt: Any) -> None:
        if self.closed:  # a farewell socket is reachable, but nothing more is sent to it
            return
        await super().send(pkt)

    async def handle_post_request(self, environ: Any) -> None:
        if self.closed:
            # Ended as a slow consumer: what it sends now reaches no handler; its
            # next GET fetches why (a POST answering a ping must not lose that).
            return
        try:
            await super().handle_post_request(environ)
        except eio_exceptions.EngineIOError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, UnicodeDecodeError) as exc:
            _log.warning(reason="polling payload does not decode", error=type(exc).__name__)
            await self.close(wait=False, abort=True)
            self.queue.put_nowait(None)
            raise eio_exceptions.EngineIOError("malformed payload") from None


class CheckedWebSocket(WebSocket):  # type: ignore[misc]
    """engine.io's ASGI WebSocket, ending the connection on a frame that does not decode."""

    async def __call__(self, environ: Any) -> Any:
        # The handler is the engine.io socket's bound `_websocket_handler`: the socket
        # learns its transport, so that an overflow can abort it (`abort`).
        socket = getattr(self.handler, "__self__", None)
        if socket is not None:
            socket.roomcast_ws = self
        # The request's body reader, an instance of a class engine.io defines anew for
        # every request (≈2.4 KB a connection, bench P6): a WebSocket has no body, and
        # python-socketio keeps this environ for the session's life.
        environ.pop("wsgi.input", None)
        return await super().__call__(environ)

    def abort(self) -> None:
        """Drop the TCP connection now, unsent bytes and all.

        A client that does not read leaves the writer waiting for the transport to
        drain, and a close waits for the same: only an abort frees the connection.
        uvicorn's ASGI ``send`` is its protocol's bound method; its ``transport``
        is the connection (pinned, tests/contract/test_engineio_internals.py).
        """
        protocol = getattr(self.asgi_send, "__self__", None)
        transport = getattr(protocol, "transport", None)
        if transport is not None and not transport.is_closing():
            transport.abort()

    async def wait(self) -> Any:
        socket = getattr(self.handler, "__self__", None)
        if socket is not None and socket.closed:
            # The session is over (the client sent CLOSE, or the server ended it):
            # engine.io would go on reading a transport nobody answers any more.
            await self.close()
            return None
        frame = await super().wait()
        if frame is None or valid_frame(frame):
            return frame
        _log.warning(reason="not an Engine.IO packet", frame=repr(frame[:40]))
        await self.close()
        return None  # engine.io reads this as "closed by the client" and cleans up


def packet_bytes(pkt: Any) -> int:
    """The size an engine.io packet takes in the queue (its encoded data, roughly)."""
    data = getattr(pkt, "data", None)
    if isinstance(data, str | bytes | bytearray):
        return len(data) + 1
    return 16


class OutboundQueue(LeanQueue[Any]):
    """An engine.io socket's send queue that knows how many bytes wait in it.

    A ``LeanQueue``, not an ``asyncio.Queue``: every idle socket holds one (bench P6).

    ``limit`` 0: unbounded (until ``bind`` sets it). Over ``limit``: the waiting
    packets are dropped, later ones are refused, and ``on_overflow()`` is called
    once (synchronously: it schedules the end of the connection).
    """

    __slots__ = ("_drained", "_on_overflow", "bytes", "limit", "overflowed")

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.limit = 0
        self.overflowed = False
        self._on_overflow: Callable[[], None] | None = None
        self._drained: asyncio.Event | None = None

    def bind(self, limit: int, on_overflow: Callable[[], None]) -> None:
        self.limit = limit
        self._on_overflow = on_overflow

    def put_nowait(self, item: Any) -> None:
        if item is None:  # engine.io's "stop" sentinel: always delivered
            super().put_nowait(item)
            return
        if self.overflowed:
            return
        self.bytes += packet_bytes(item)
        super().put_nowait(item)
        if self.limit and self.bytes > self.limit:
            self.overflowed = True
            self.clear()
            self.release()
            if self._on_overflow is not None:
                self._on_overflow()

    def get_nowait(self) -> Any:
        item = super().get_nowait()
        if item is not None:
            self.bytes = max(0, self.bytes - packet_bytes(item))
            if self._drained is not None and self.bytes <= self.limit // 4:
                self._drained.set()
        return item

    def clear(self) -> None:
        """Drop every waiting packet (their memory goes with them)."""
        while not self.empty():
            super().get_nowait()
            self.task_done()
        self.bytes = 0

    def put_after_overflow(self, item: Any) -> None:
        """Queue the overflow notice itself (and the CLOSE after it)."""
        self.bytes += packet_bytes(item)
        super().put_nowait(item)

    def release(self) -> None:
        """Wake whoever waits in ``drained`` (the socket overflowed or is gone)."""
        if self._drained is not None:
            self._drained.set()

    async def drained(self, within: float) -> bool:
        """Wait until at most a quarter of the limit waits (a replay's pace).

        False if that did not happen ``within`` seconds: the client has stalled.
        """
        if not self.limit or self.bytes <= self.limit // 4 or self.overflowed:
            return True
        self._drained = asyncio.Event()
        try:
            async with asyncio.timeout(within):
                await self._drained.wait()
        except TimeoutError:
            return False
        finally:
            self._drained = None
        return True
