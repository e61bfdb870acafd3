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
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeadWithBody", "OneWriteHttpProtocol"]


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


class OneWriteHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose response cycles write through ``HeadWithBody``."""

    _responses: HeadWithBody

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._responses = HeadWithBody(transport, self.loop)

    def on_headers_complete(self) -> None:
        # The cycle uvicorn builds here takes ``self.transport`` for its writes; the
        # connection keeps the real one for everything else.
        transport, self.transport = self.transport, self._responses
        try:
            super().on_headers_complete()
        finally:
            self.transport = transport
