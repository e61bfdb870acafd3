"""structlog set-up: JSON lines in production (or when not on a terminal), readable otherwise."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO, cast

import msgspec
import structlog

from roomcast import logfields

__all__ = ["configure_logging"]

_json = msgspec.json.Encoder(enc_hook=repr)


def _dumps(obj: Any, **_: Any) -> str:
    # structlog passes `default=`; msgspec's encode takes no keywords. The stdlib
    # formatter that renders the line wants text, not bytes.
    return _json.encode(obj).decode()


class _UtcStamp:
    """structlog processor: ``timestamp`` as ISO 8601 in UTC with microseconds, ``…Z``.

    The same text as ``TimeStamper(fmt="iso", utc=True)`` (which drops the
    microseconds when they are 0), at a third of its cost: the date and time
    of day are formatted once per second.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(
        self, _: Any, __: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1e6):06d}Z"
        return event_dict


class _WebSocketHandshakes(logging.Filter):
    """Drops uvicorn's and websockets' info line for every WebSocket opened or closed.

    ``socket_connected`` / ``socket_disconnected`` say the same with the socket's
    id and user; three more lines per connection cost a reconnect storm ~10 % of
    the server's CPU. Refused handshakes and every warning still get through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return True
        return not (record.msg.endswith("[accepted]") or record.msg.startswith("connection "))


class _PerLoopTurn:
    """A stream whose lines leave in one ``write`` per turn of the event loop.

    Every log line used to be a system call of its own: ~5 % of a command's CPU
    under load (the request's access line). Lines written while a loop runs are
    kept until the end of the current turn (``call_soon``), then written and
    flushed together; outside a loop (start-up, shutdown, other threads) they
    are written at once, and whatever is pending at exit is written then. A
    process killed outright loses at most the lines of the turn it died in.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._pending = False
        self._lock = threading.Lock()
        atexit.register(self._write_out)

    def write(self, text: str) -> int:
        with self._lock:
            self._lines.append(text)
            if self._pending:  # the write-out of this turn is already scheduled
                return len(text)
            self._pending = True
        try:
            asyncio.get_running_loop().call_soon(self._write_out)
        except RuntimeError:
            self._write_out()
        return len(text)

    def flush(self) -> None:
        """Nothing to do: ``write`` has scheduled (or done) the write-out already."""

    def isatty(self) -> bool:
        return self._stream.isatty()

    def _write_out(self) -> None:
        with self._lock:
            lines, self._lines, self._pending = self._lines, [], False
        if lines:
            self._stream.write("".join(lines))
            self._stream.flush()


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    production: bool = False,
    stream: TextIO | None = None,
    per_loop_turn: bool = False,
) -> None:
    """Configure structlog and route the stdlib loggers (uvicorn, asyncpg) through it.

    Our own lines are rendered by structlog and written straight to stderr; only
    other libraries' lines go through the stdlib ``logging`` machinery, whose
    caller lookup and record objects cost several times the rendering.
    ``per_loop_turn``: write a loop turn's lines together (``_PerLoopTurn``), for
    the long-running servers.
    """
    stream = sys.stderr if stream is None else stream
    as_json = fmt == "json" or (fmt == "auto" and (production or not stream.isatty()))
    if per_loop_turn:
        stream = cast(TextIO, _PerLoopTurn(stream))  # only write, flush and isatty are used
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Any] = [
        logfields.merge,
        structlog.processors.add_log_level,
        _UtcStamp(),
    ]
    renderer: Any
    if as_json:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(_WebSocketHandshakes())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
