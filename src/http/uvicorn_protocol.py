"""uvicorn's httptools protocol, with the request head bounded and refused in the envelope.

httptools buffers a request's head without limit (a 32 MB header was accepted,
as were 10,000 headers): more than ``max_head_bytes`` before the end of the
headers, or more than ``max_headers`` headers, is refused with PAYLOAD_TOO_LARGE;
a request httptools cannot parse (a control character in a header) gets
INVALID_PAYLOAD. Both in the protocol's JSON envelope, not uvicorn's plain text,
and the connection is closed. Passed to uvicorn as ``http=`` (cli.uvicorn_options).

Overridden uvicorn parts (pinned; tests/contract/test_uvicorn_internals.py):
``data_received``, ``on_url``, ``on_header``, ``on_message_begin``,
``on_headers_complete``, ``send_400_response``. (It also used to hold each
response's head until its body joined it, for one write instead of two; bench O1
showed that did not pay, and it was removed: bench/README.md.)
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from roomcast import wire
from roomcast.domain.errors import ErrorCode
from roomcast.http.errors import STATUS

__all__ = ["BoundedHttpProtocol", "with_limits"]

_REASONS = {400: b"Bad Request", 413: b"Content Too Large"}


class _HeadTooLarge(Exception):
    """Raised inside a parser callback: httptools turns it into a parser error."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with the request head bounded."""

    max_headers = 100
    max_head_bytes = 16 * 1024
    """Request line and headers together (Node's default ``maxHeaderSize``)."""

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
        self._in_head = False  # what follows is the body: not counted against the head
        super().on_headers_complete()


def with_limits(*, max_headers: int, max_head_bytes: int) -> type[BoundedHttpProtocol]:
    """``BoundedHttpProtocol`` with these head limits (uvicorn takes a class)."""
    return type(
        "BoundedHttpProtocol",
        (BoundedHttpProtocol,),
        {"max_headers": max_headers, "max_head_bytes": max_head_bytes},
    )
