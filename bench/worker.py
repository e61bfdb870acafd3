"""A client process: many lean Socket.IO clients, driven by JSON lines on stdin.

Each client speaks Engine.IO v4 / Socket.IO v5 directly over one websocket
(``/socket.io/?EIO=4&transport=websocket``): CONNECT with ``auth.token``, answer
pings, ``room:subscribe`` with an ack, and count the room events it receives by
``seq``. It is much leaner than python-socketio's ``AsyncClient`` (see
shared/notes/stack.md), so the server, not the clients, is what is measured.

``SseClient``: the same counting for a room's Server-Sent Events stream
(``connect`` with ``transport: "sse"``), over a raw HTTP/1.1 connection.

The harness (``bench.procs.Worker``) sends one JSON object per line and reads one
reply per line, matched by ``id``. Commands: ``connect``, ``subscribe``, ``arm``,
``wait``, ``close``, ``reconnect``, ``stats``, ``quit``. A closed stdin (the
harness died) ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect

from roomcast import gctune
from roomcast.config import Settings

_MAX_LATENCIES = 2_000_000
_CONNECT_TIMEOUT = 30.0


class _Seq(msgspec.Struct):
    seq: int = 0
    headSeq: int | None = None


class _Stamped(msgspec.Struct):
    seq: int = 0
    headSeq: int | None = None
    timestamp: datetime | None = None


# A Socket.IO event is ``[name, payload]``; with connection state recovery on, a
# broadcast carries its offset as one more element: ``[name, payload, offset]``.
_plain = msgspec.json.Decoder(tuple[str, _Seq])
_stamped = msgspec.json.Decoder(tuple[str, _Stamped])
_plain_frame = msgspec.json.Decoder(tuple[str, list[_Seq]])
_stamped_frame = msgspec.json.Decoder(tuple[str, list[_Stamped]])
_plain_off = msgspec.json.Decoder(tuple[str, _Seq, str])
_stamped_off = msgspec.json.Decoder(tuple[str, _Stamped, str])
_plain_frame_off = msgspec.json.Decoder(tuple[str, list[_Seq], str])
_stamped_frame_off = msgspec.json.Decoder(tuple[str, list[_Stamped], str])
_WITH_OFFSET: dict[Any, Any] = {
    _plain: _plain_off,
    _stamped: _stamped_off,
    _plain_frame: _plain_frame_off,
    _stamped_frame: _stamped_frame_off,
}
_FRAME = '["room:events",'
"""How a ``room:events`` frame (``batch: true`` subscribers) starts: an array of payloads."""
_any = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


class Client:
    """One Socket.IO connection; its room's last seq and when it reached the target."""

    __slots__ = (
        "acks",
        "base",
        "batch",
        "dups",
        "error",
        "gaps",
        "last_seq",
        "next_ack",
        "offset",
        "pid",
        "reader",
        "received",
        "recovered",
        "recovery",
        "sid",
        "t_last",
        "t_target",
        "with_offsets",
        "worker",
        "ws",
    )

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.next_ack = 0
        self.last_seq = 0
        self.base: int | None = None
        self.received = 0
        self.dups = 0
        self.gaps = 0
        self.t_last = 0.0
        self.t_target: float | None = None
        self.error: str | None = None
        self.batch = False
        self.recovery = False
        """Reconnect with Socket.IO's connection state recovery (``pid`` and ``offset``)."""
        self.sid: str | None = None
        self.pid: str | None = None
        self.offset: str | None = None
        """The offset of the last broadcast received (connection state recovery)."""
        self.with_offsets = False
        self.recovered = False

    def _decode(self, decoder: msgspec.json.Decoder[Any], body: str) -> tuple[str, Any]:
        """``[name, payload]``, or ``[name, payload, offset]`` (keeping the offset)."""
        if self.with_offsets:
            with contextlib.suppress(msgspec.ValidationError):
                name, payload, self.offset = _WITH_OFFSET[decoder].decode(body)
                return name, payload
            return decoder.decode(body)  # type: ignore[no-any-return]
        try:
            return decoder.decode(body)  # type: ignore[no-any-return]
        except msgspec.ValidationError:
            name, payload, self.offset = _WITH_OFFSET[decoder].decode(body)
            self.with_offsets = True
            return name, payload

    async def open(self, url: str, token: str, *, recover: bool = False) -> None:
        """Connect; with ``recover`` (and a session to recover), ask for it back.

        Sets ``recovered`` when the server restored the session (same sid)."""
        uri = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        ws = await connect(
            uri,
            compression=None,  # as python-socketio's AsyncClient: no permessage-deflate
            proxy=None,
            ping_interval=None,  # Engine.IO pings at its own level
            max_size=None,
            open_timeout=_CONNECT_TIMEOUT,
            close_timeout=1,
            user_agent_header=None,
        )
        self.ws = ws
        opened = await asyncio.wait_for(ws.recv(), _CONNECT_TIMEOUT)
        if not isinstance(opened, str) or not opened.startswith("0"):
            raise RuntimeError(f"unexpected Engine.IO open packet {opened!r:.80}")
        early: list[str | bytes] = []
        auth: dict[str, Any] = {"token": token}
        asked = recover and self.pid is not None and self.offset is not None
        if asked:
            auth |= {"pid": self.pid, "offset": self.offset}
        await ws.send("40" + _encode(auth).decode())
        while True:
            packet = await asyncio.wait_for(ws.recv(), _CONNECT_TIMEOUT)
            assert isinstance(packet, str)
            if packet == "2":
                await ws.send("3")
            elif packet.startswith("40"):
                answer = _any.decode(packet[2:]) if len(packet) > 2 else {}
                sid = answer.get("sid") if isinstance(answer, dict) else None
                pid = answer.get("pid") if isinstance(answer, dict) else None
                # socket.io-client's rule: recovered when the answer has the same pid
                # (Node's server also keeps the sid; roomcast gives a new one).
                self.recovered = bool(
                    asked and ((pid is not None and pid == self.pid) or sid == self.sid)
                )
                self.sid = sid
                if isinstance(answer, dict) and isinstance(answer.get("pid"), str):
                    self.pid = answer["pid"]
                break
            elif packet.startswith("44"):
                raise RuntimeError(f"connect refused: {packet[2:200]}")
            else:
                # socket.io sends a recovered session's missed packets before its
                # CONNECT answer; its client buffers them until connected, so do we.
                early.append(packet)
        self.reader = asyncio.create_task(self._read(ws, early))

    async def call(self, event: str, data: Any, within: float) -> Any:
        assert self.ws is not None
        ack_id = self.next_ack
        self.next_ack += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[ack_id] = future
        await self.ws.send(f"42{ack_id}" + _encode([event, data]).decode())
        try:
            return await asyncio.wait_for(future, within)
        finally:
            self.acks.pop(ack_id, None)

    async def subscribe(self, room: str, last_seq: int | None, within: float) -> int:
        payload: dict[str, Any] = {"roomId": room}
        if self.batch:
            payload["batch"] = True
        if last_seq is not None:
            payload["lastSeq"] = last_seq
            self.base = last_seq
            self.last_seq = max(self.last_seq, last_seq)
        ack = await self.call("room:subscribe", payload, within)
        answer = ack[0] if isinstance(ack, list) and ack else ack
        if not isinstance(answer, dict) or not answer.get("success"):
            raise RuntimeError(f"subscribe refused: {str(answer)[:200]}")
        head = int(answer["data"]["headSeq"])
        if self.base is None:
            self.base = head
            self.last_seq = max(self.last_seq, head)
        return head

    @staticmethod
    async def _packets(
        ws: ClientConnection, early: list[str | bytes]
    ) -> AsyncIterator[str | bytes]:
        for packet in early:
            yield packet
        async for packet in ws:
            yield packet

    async def _read(self, ws: ClientConnection, early: list[str | bytes]) -> None:
        worker = self.worker
        try:
            async for packet in self._packets(ws, early) if early else ws:
                if not isinstance(packet, str):
                    continue
                kind = packet[:2]
                if kind == "42" and packet.startswith(_FRAME, 2):
                    now = time.time()
                    if worker.record:
                        _, stamped_items = self._decode(_stamped_frame, packet[2:])
                        for item in stamped_items:
                            if (
                                item.seq
                                and item.timestamp is not None
                                and len(worker.latencies) < _MAX_LATENCIES
                            ):
                                worker.latencies.append(now - item.timestamp.timestamp())
                                worker.latency_seqs.append(item.seq)
                            if item.seq:
                                self._seen(item.seq, now)
                    else:
                        _, items = self._decode(_plain_frame, packet[2:])
                        for plain_item in items:
                            if plain_item.seq:
                                self._seen(plain_item.seq, now)
                elif kind == "42":
                    now = time.time()
                    body = packet[2:]
                    if worker.record:
                        name, stamped = self._decode(_stamped, body)
                        seq = stamped.seq
                        if (
                            seq
                            and stamped.timestamp is not None
                            and worker.room_event(name)
                            and len(worker.latencies) < _MAX_LATENCIES
                        ):
                            worker.latencies.append(now - stamped.timestamp.timestamp())
                            worker.latency_seqs.append(seq)
                    else:
                        name, plain = self._decode(_plain, body)
                        seq = plain.seq
                    if seq and worker.room_event(name):
                        self._seen(seq, now)
                elif kind == "43":
                    at = packet.index("[")
                    future = self.acks.get(int(packet[2:at]))
                    if future is not None and not future.done():
                        future.set_result(_any.decode(packet[at:]))
                elif packet == "2":
                    await ws.send("3")
                elif packet[:1] == "1" or kind == "41":
                    break
        except Exception as exc:  # a dropped connection is a finding, not a crash
            self.error = repr(exc)[:200]
        finally:
            for future in self.acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))

    def _seen(self, seq: int, now: float) -> None:
        self.received += 1
        self.t_last = now
        if seq <= self.last_seq and self.base is not None:
            self.dups += 1
            return
        if self.base is not None and seq > self.last_seq + 1:
            self.gaps += seq - self.last_seq - 1
        if self.base is None:
            self.base = seq - 1
        self.last_seq = seq
        target = self.worker.target
        if target is not None and seq >= target and self.t_target is None:
            self.t_target = now

    async def close(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
            self.reader = None


class SseClient(Client):
    """One Server-Sent Events stream of a room (``GET /api/rooms/{id}/stream``) over a raw
    HTTP/1.1 connection: the chunked body is de-chunked and each event's ``id:`` (its
    seq) is counted as a Socket.IO client counts a payload's ``seq``. As lean as the
    websocket client, so the server is what is measured."""

    __slots__ = ("writer",)

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self.writer: asyncio.StreamWriter | None = None

    async def open_stream(self, url: str, token: str, room: str, last_seq: int | None) -> None:
        """Open the stream; returns once the answer's head arrived (the server listens from
        then on: it registers the stream before it reads the head and answers)."""
        host, _, port = url.removeprefix("http://").partition(":")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port), limit=1 << 22), _CONNECT_TIMEOUT
        )
        self.writer = writer
        lines = [
            f"GET /api/rooms/{room}/stream HTTP/1.1",
            f"Host: {host}:{port}",
            f"Authorization: Bearer {token}",
            "Accept: text/event-stream",
        ]
        if last_seq is not None:
            lines.append(f"Last-Event-ID: {last_seq}")
            self.base = last_seq
            self.last_seq = max(self.last_seq, last_seq)
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = await asyncio.wait_for(reader.readuntil(b"\r\n"), _CONNECT_TIMEOUT)
        chunked = False
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if b" 200 " not in status or not chunked:
            raise RuntimeError(f"stream refused: {status.strip()!r}")
        self.reader = asyncio.create_task(self._read_stream(reader))

    async def _read_stream(self, reader: asyncio.StreamReader) -> None:
        pending = b""
        try:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    break
                pending += (await reader.readexactly(size + 2))[:-2]
                end = pending.rfind(b"\n\n")
                if end < 0:
                    continue
                block, pending = pending[:end], pending[end + 2 :]
                now = time.time()
                for event in block.split(b"\n\n"):
                    if event.startswith(b"id: "):
                        self._seen(int(event[4 : event.index(b"\n")]), now)
                    elif event.startswith(b"event: error"):
                        self.error = event[:200].decode(errors="replace")
        except Exception as exc:  # a dropped stream is a finding, not a crash
            self.error = self.error or repr(exc)[:200]

    async def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
            self.reader = None


class Worker:
    def __init__(self) -> None:
        self.clients: list[Client] = []
        self.target: int | None = None
        self.record = False
        self.latencies: list[float] = []
        """Receipt time minus the payload's ``timestamp``, per delivery (when recording)."""
        self.latency_seqs: list[int] = []
        self.storm: list[asyncio.Task[None]] = []

    @staticmethod
    def room_event(name: str) -> bool:
        return name != "room:subscribed"

    # ------------------------------------------------------------- commands

    async def cmd_connect(
        self,
        url: str,
        token: str,
        n: int,
        room: str | None = None,
        last_seq: int | None = None,
        concurrency: int = 50,
        within: float = 60.0,
        batch: bool = False,
        recovery: bool = False,
        transport: str = "socketio",
    ) -> dict[str, Any]:
        """``transport`` "sse": Server-Sent Events streams of ``room`` (``last_seq`` is
        their Last-Event-ID) instead of Socket.IO connections."""
        started = time.time()
        gate = asyncio.Semaphore(concurrency)
        sse = transport == "sse"
        fresh = [SseClient(self) if sse else Client(self) for _ in range(n)]
        for client in fresh:
            client.batch = batch  # kept for reconnects
            client.recovery = recovery
        errors: list[str] = []
        heads: list[int] = []

        async def one(client: Client) -> bool:
            async with gate:
                try:
                    if isinstance(client, SseClient):
                        if room is None:
                            raise ValueError("an SSE stream needs a room")
                        await client.open_stream(url, token, room, last_seq)
                        return True
                    await client.open(url, token)
                    if room is not None:
                        heads.append(await client.subscribe(room, last_seq, within))
                except Exception as exc:
                    errors.append(repr(exc)[:200])
                    await client.close()
                    return False
                return True

        ok = await asyncio.wait_for(asyncio.gather(*(one(c) for c in fresh)), within * 2)
        self.clients.extend(c for c, good in zip(fresh, ok, strict=True) if good)
        return {
            "connected": sum(ok),
            "failed": n - sum(ok),
            "errors": errors[:3],
            "head": max(heads) if heads else None,
            "seconds": time.time() - started,
        }

    async def cmd_subscribe(
        self, room: str, last_seq: int | None = None, within: float = 60.0
    ) -> dict[str, Any]:
        heads = await asyncio.gather(*(c.subscribe(room, last_seq, within) for c in self.clients))
        return {"head": max(heads) if heads else None}

    async def cmd_arm(self, target: int, record: bool = False) -> dict[str, Any]:
        """Count from here: the seq every client must reach, and whether to keep latencies."""
        self.target = target
        self.record = record
        self.latencies = []
        self.latency_seqs = []
        for client in self.clients:
            client.t_target = time.time() if client.last_seq >= target else None
            client.received = 0
            client.dups = 0
            client.gaps = 0
        return {"clients": len(self.clients)}

    async def cmd_wait(self, within: float, latencies: bool = False) -> dict[str, Any]:
        """Until every client reached the armed target, or ``within`` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(c.t_target is not None for c in self.clients):
                break
            await asyncio.sleep(0.005)
        reached = [c.t_target for c in self.clients if c.t_target is not None]
        reply: dict[str, Any] = {
            "clients": len(self.clients),
            "caught_up": len(reached),
            "t_first": min(reached) if reached else None,
            "t_last": max(reached) if reached else None,
            "received": sum(c.received for c in self.clients),
            "dups": sum(c.dups for c in self.clients),
            "gaps": sum(c.gaps for c in self.clients),
            "dropped": sum(1 for c in self.clients if c.error is not None),
            "recovered": sum(1 for c in self.clients if c.recovered),
            "errors": [c.error for c in self.clients if c.error][:3],
            "cpu": time.process_time(),
        }
        if latencies:
            reply["latencies"] = self.latencies
            reply["latency_seqs"] = self.latency_seqs
        return reply

    async def cmd_close(self) -> dict[str, Any]:
        """Drop every connection (the server sees disconnects); keep each client's seq."""
        for task in self.storm:
            task.cancel()
        await asyncio.gather(*self.storm, return_exceptions=True)
        self.storm = []
        await asyncio.gather(*(c.close() for c in self.clients))
        return {"closed": len(self.clients)}

    async def cmd_reconnect(
        self, url: str, token: str, room: str, within: float = 60.0
    ) -> dict[str, Any]:
        """All at once: reconnect every client, subscribing with its own last seq.

        Returns when the connects are launched; ``wait`` tells when they caught up.
        """
        started = time.time()
        self.storm = [
            asyncio.create_task(self._rejoin(c, url, token, room, within)) for c in self.clients
        ]
        return {"t_start": started}

    async def _rejoin(self, client: Client, url: str, token: str, room: str, within: float) -> None:
        client.error = None
        try:
            await client.open(url, token, recover=client.recovery)
            if not client.recovered:  # a recovered session is still in its rooms
                await client.subscribe(room, client.last_seq, within)
        except Exception as exc:
            client.error = repr(exc)[:200]

    async def cmd_forget(self) -> dict[str, Any]:
        """Close and drop every client."""
        await self.cmd_close()
        count = len(self.clients)
        self.clients = []
        self.target = None
        self.record = False
        self.latencies = []
        self.latency_seqs = []
        return {"forgotten": count}

    async def cmd_stats(self) -> dict[str, Any]:
        return {"clients": len(self.clients), "cpu": time.process_time()}


async def _serve() -> None:
    worker = Worker()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    pending: set[asyncio.Task[None]] = set()

    async def handle(request: dict[str, Any]) -> None:
        name = request.pop("cmd")
        ident = request.pop("id")
        try:
            result = await getattr(worker, f"cmd_{name}")(**request)
            reply = {"id": ident, "ok": True, "result": result}
        except Exception as exc:
            reply = {"id": ident, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        out.write(_encode(reply) + b"\n")
        out.flush()

    while True:
        line = await reader.readline()
        if not line:
            break  # the harness is gone
        request = msgspec.json.decode(line)
        if request.get("cmd") == "quit":
            break
        task = asyncio.create_task(handle(request))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await worker.cmd_forget()


def main() -> None:
    import uvloop  # uvicorn[standard] ships it; the server runs on it too

    # The measuring instrument: with CPython's default thresholds its own full
    # collections (~50 ms with 250 sockets) would show up in both sides' tails.
    gctune.tune(Settings().gc_threshold)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve())


if __name__ == "__main__":
    main()
