"""uvicorn's httptools protocol, with each response's head and body leaving in one write.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and the body when it sends ``http.response.body``: two
``send()`` system calls, two TCP segments, for every answer. On loopback each
costs ≈4.5 µs of kernel time in the server (measured, bench/README.md), ~3 % of
a command's CPU, and the client reads twice. Here the head is held until the
body's first write joins it, or until the end of the current loop turn, so a
streaming response whose body comes later still gets its head at once.

Only the request-response cycle's writes go through the holder; the connection
(its 400 answers, a WebSocket upgrade and the frames after it) keeps the real
transport. Passed to uvicorn as ``http=`` (cli.uvicorn_options).

It also bounds a request's head, which httptools buffers without limit (a 32 MB
header was accepted, as were 10,000 headers): more than ``max_head_bytes`` before
the end of the headers, or more than ``max_headers`` headers, is refused with
PAYLOAD_TOO_LARGE; a request httptools cannot parse (a control character in a
header) gets INVALID_PAYLOAD. Both in the protocol's JSON envelope, not uvicorn's
plain text, and the connection is closed. Overridden uvicorn parts (pinned,
tests/unit/test_uvicorn_protocol.py): ``data_received``, ``on_header``,
``on_message_begin``, ``on_headers_complete``, ``send_400_response``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from roomcast import wire
from roomcast.domain.errors import ErrorCode
from roomcast.http.errors import STATUS

__all__ = ["HeadWithBody", "OneWriteHttpProtocol", "with_limits"]

_REASONS = {400: b"Bad Request", 413: b"Content Too Large"}


class HeadWithBody(asyncio.Transport):
    """What a response cycle writes to: a response head waits for the bytes after it."""

    def __init__(self, transport: asyncio.WriteTransport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif _is_final_head(data):
            self._head = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


def _is_final_head(data: bytes | bytearray | memoryview) -> bool:
    """A status line and headers (not an interim 1xx such as 100 Continue)."""
    chunk = bytes(data[:10])
    return chunk.startswith(b"HTTP/1.") and chunk[9:10] != b"1" and data[-4:] == b"\r\n\r\n"


class _HeadTooLarge(Exception):
    """Raised inside a parser callback: httptools turns it into a parser error."""


class OneWriteHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose response cycles write through ``HeadWithBody``."""

    max_headers = 100
    max_head_bytes = 16 * 1024
    """Request line and headers together (Node's default ``maxHeaderSize``)."""

    _responses: HeadWithBody
    _in_head = True
    _head_bytes = 0
    _head_size = 0
    """Bytes of the request line and headers httptools handed over so far."""
    _header_count = 0
    _too_large = False
    _discarding = False
    linger_seconds = 2.0
    """How long a refused connection's remaining input is read and dropped before it is
    closed: closing with unread input sends a reset, which can destroy the answer."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._responses = HeadWithBody(transport, self.loop)

    def data_received(self, data: bytes) -> None:
        if self._discarding:  # refused: what still arrives is read and dropped
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes + 65536 and not self._too_large:
                # Still no end of the headers: refused before httptools buffers more.
                self._too_large = True
                self.send_400_response("request head too large")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._head_size = 0
        self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._too_large = True
            raise _HeadTooLarge
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.max_head_bytes:
            self._too_large = True
            raise _HeadTooLarge

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            code, message = (
                ErrorCode.PAYLOAD_TOO_LARGE,
                (
                    f"request headers may be at most {self.max_head_bytes} bytes"
                    f" and {self.max_headers} fields"
                ),
            )
        else:
            code, message = ErrorCode.INVALID_PAYLOAD, "invalid HTTP request"
        body = wire.encode(wire.Failure(error=wire.ErrorBody(code=code, message=message)))
        status = STATUS[code]
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error"))
        transport = self.transport
        transport.write(
            head
            + b"content-type: application/json\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        if not self._too_large or not transport.can_write_eof():
            transport.close()
            return
        self._discarding = True
        transport.write_eof()  # the answer, then FIN; the client reads it and closes
        self.loop.call_later(self.linger_seconds, transport.close)

    def on_headers_complete(self) -> None:
        self._in_head = False
        # The cycle uvicorn builds here takes ``self.transport`` for its writes; the
        # connection keeps the real one for everything else.
        transport, self.transport = self.transport, self._responses
        try:
            super().on_headers_complete()
        finally:
            self.transport = transport


def with_limits(*, max_headers: int, max_head_bytes: int) -> type[OneWriteHttpProtocol]:
    """``OneWriteHttpProtocol`` with these head limits (uvicorn takes a class)."""
    return type(
        "OneWriteHttpProtocol",
        (OneWriteHttpProtocol,),
        {"max_headers": max_headers, "max_head_bytes": max_head_bytes},
    )
