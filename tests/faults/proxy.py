"""A TCP proxy in front of PostgreSQL that cuts a connection at a chosen write.

Listens on loopback; each accepted connection gets its own upstream connection
(a Unix socket or TCP, from the DSN). Bytes are forwarded unchanged until a
client-to-server chunk contains the armed marker (a value only one statement
carries, such as a new room name in a Bind message); then, one shot:

* ``after``: the chunk is delivered, PostgreSQL runs (and commits) it and closes,
  and only then is the client cut, its answer never sent: committed, unanswered.
* ``now``: the client is cut and the chunk delivered at the same moment: whether
  it commits is a race, the answer must be true either way.
* ``drop``: the chunk is discarded and both sides closed: nothing ran.
* ``late``: the client side is closed at once and the chunk delivered only
  ``late_seconds`` later, as a packet stuck in a network would be: whoever
  settles the outcome must make sure it cannot commit after they looked.

It runs on an event loop of its own, in a thread: the server under test runs in
another thread and the test's loop may be blocked in a synchronous fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import threading
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

__all__ = ["CutProxy", "Mode"]

Mode = Literal["after", "now", "drop", "late"]


@dataclass
class _Armed:
    marker: bytes
    mode: Mode
    done: threading.Event = field(default_factory=threading.Event)
    """Set once the cut (and, for ``late``, the late delivery) has happened."""


class CutProxy:
    def __init__(self, dsn: str, *, late_seconds: float = 0.5) -> None:
        self._dsn = dsn
        self._late_seconds = late_seconds
        self._server: asyncio.Server | None = None
        self._armed: _Armed | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cut-proxy")
        self.cuts = 0

    def start(self) -> str:
        """Start listening; the DSN that reaches the same database through the proxy."""
        self._thread.start()
        listen = asyncio.start_server(self._accept, "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(listen, self._loop).result(30)
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self._dsn)
        user = parts.username or "postgres"
        return urlunsplit(("postgresql", f"{user}@127.0.0.1:{port}", parts.path, "", ""))

    def arm(self, marker: str, mode: Mode) -> threading.Event:
        """Cut the next connection that sends ``marker``; the event is set when done."""
        armed = _Armed(marker.encode(), mode)
        self._armed = armed  # one attribute store: safe to hand to the proxy's thread
        return armed.done

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        parts = urlsplit(self._dsn)
        host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
        if host.startswith("/"):
            [path] = [p for p in glob.glob(os.path.join(host, ".s.PGSQL.*")) if "lock" not in p]
            return await asyncio.open_unix_connection(path)
        return await asyncio.open_connection(host, parts.port or 5432)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            up_reader, up_writer = await self._upstream()
        except OSError:
            writer.transport.abort()
            self._pipes.discard(task)
            return
        muted = asyncio.Event()  # set: PostgreSQL's answers are no longer passed on
        back = asyncio.create_task(self._pump(up_reader, writer, muted))
        try:
            await self._forward(reader, up_writer, writer, back, muted)
        finally:
            back.cancel()
            await asyncio.gather(back, return_exceptions=True)
            for w in (writer, up_writer):
                w.transport.abort()
            self._pipes.discard(task)

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        writer: asyncio.StreamWriter,
        back: asyncio.Task[None],
        muted: asyncio.Event,
    ) -> None:
        while chunk := await reader.read(65536):
            armed = self._armed
            if armed is None or armed.marker not in chunk:
                up_writer.write(chunk)
                await up_writer.drain()
                continue
            self._armed = None
            self.cuts += 1
            muted.set()
            if armed.mode != "after":
                writer.transport.abort()
            if armed.mode == "late":
                await asyncio.sleep(self._late_seconds)  # the fault itself: a late packet
            if armed.mode != "drop":
                with contextlib.suppress(OSError):
                    up_writer.write(chunk)
                    await up_writer.drain()
                    up_writer.write_eof()  # the data, then EOF: PostgreSQL runs what it got
                    # Until PostgreSQL closes its side: it has run the statement by then
                    # (or its backend was ended first).
                    await asyncio.wait_for(asyncio.shield(back), timeout=30)
            writer.transport.abort()
            armed.done.set()
            return

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, muted: asyncio.Event
    ) -> None:
        # Reads to the end even once the client is cut: the end is PostgreSQL's own
        # close, which the cut modes wait for.
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                if muted.is_set() or writer.is_closing():
                    continue
                writer.write(chunk)
                with contextlib.suppress(OSError):
                    await writer.drain()
