"""A Server-Sent Events reader on httpx: a real HTTP client, parsed the way EventSource does."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["SseEvent", "SseStream", "open_stream"]


@dataclass
class SseEvent:
    event: str
    data: Any
    id: str | None


@dataclass
class SseStream:
    """What one stream delivered so far; ``wait`` awaits a condition on it."""

    response: httpx.Response
    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: bool = False
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def seqs(self) -> list[int]:
        return [int(e.id) for e in self.events if e.id is not None]

    @property
    def last_id(self) -> str | None:
        ids = [e.id for e in self.events if e.id is not None]
        return ids[-1] if ids else None

    async def wait(self, condition: Any, within: float = 30) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: condition(self))

    async def wait_for_seq(self, seq: int, within: float = 30) -> None:
        await self.wait(lambda s: bool(s.seqs) and s.seqs[-1] >= seq, within)

    async def read(self) -> None:
        kind, data, ident = "message", [], None
        try:
            async for line in self.response.aiter_lines():
                if line.startswith(":"):
                    await self._add(comment=line[1:].strip())
                elif line == "":
                    if data:
                        await self._add(SseEvent(kind, json.loads("\n".join(data)), ident))
                    kind, data, ident = "message", [], None
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        kind = value
                    elif name == "data":
                        data.append(value)
                    elif name == "id":
                        ident = value
        except httpx.ReadError:
            pass
        async with self._changed:
            self.ended = True
            self._changed.notify_all()

    async def _add(self, event: SseEvent | None = None, comment: str | None = None) -> None:
        async with self._changed:
            if event is not None:
                self.events.append(event)
            if comment is not None:
                self.comments.append(comment)
            self._changed.notify_all()


@contextlib.asynccontextmanager
async def open_stream(http: httpx.AsyncClient, url: str, **kwargs: Any) -> AsyncIterator[SseStream]:
    """Open ``url`` as a stream (200 text/event-stream expected) and read it in the background."""
    async with http.stream("GET", url, **kwargs) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = SseStream(response)
        reader = asyncio.create_task(stream.read())
        try:
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
