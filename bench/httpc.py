"""A minimal keep-alive HTTP/1.1 client for the load generator.

A few dozen lines instead of httpx or aiohttp: on a 2-core machine the client
shares the CPU with the server and PostgreSQL, so the less it costs per request
the more of the measurement is the server. Loopback only, no proxies, no TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec

__all__ = ["Http", "HttpError"]

_encode = msgspec.json.Encoder().encode


class HttpError(Exception):
    pass


class Http:
    """One persistent connection; one request at a time."""

    def __init__(self, port: int, token: str | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.token = token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Http:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: str = "",
    ) -> tuple[int, bytes]:
        """``token`` instead of this connection's; ``headers``: more header lines, each
        ending in CRLF, built once by the caller."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        content = b"" if body is None else _encode(body)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if token or self.token:
            lines.append(f"Authorization: Bearer {token or self.token}")
        if body is not None:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(content)}")
        head = "\r\n".join(lines) + "\r\n" + headers + "\r\n"
        self._writer.write(head.encode() + content)
        try:
            return await self._response(self._reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise HttpError(f"{method} {path}: connection lost: {exc!r}") from None

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length: int | None = None
        chunked = False
        closing = False
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                closing = True
        if chunked:
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body = await reader.read()
            closing = True
        if closing:
            await self.close()
        return status, body

    async def json(
        self,
        method: str,
        path: str,
        body: Any = None,
        expect: int = 200,
        *,
        token: str | None = None,
        headers: str = "",
    ) -> Any:
        status, content = await self.request(method, path, body, token=token, headers=headers)
        if status != expect:
            raise HttpError(f"{method} {path}: HTTP {status}: {content[:300]!r}")
        return msgspec.json.decode(content) if content else None
