"""What the gateway refuses before any handler sees a packet: reserved names, garbage.

Three kinds of hostile input are caught at the packet level:

* a client EVENT named like a lifecycle event (``connect``, ``disconnect``, …):
  python-socketio would dispatch it to the server's own lifecycle handler (its
  guard covers only the ``*`` catch-all). It is refused with INVALID_PAYLOAD;
* a packet that does not decode (bad type, bad JSON, an EVENT whose data is not
  ``[name, ...]``, a binary attachment nobody announced, too many attachments):
  the Socket.IO specification says the connection is closed, and it is;
* the log lines such garbage causes: at most one line per interval, in JSON,
  with no traceback (``QuietLog``), whatever the client sends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import structlog

from roomcast.domain.errors import InvalidPayload

__all__ = [
    "RESERVED_EVENTS",
    "MalformedPacket",
    "QuietLog",
    "check_event",
    "library_logger",
    "reserved_event",
]

RESERVED_EVENTS = frozenset(
    {
        # python-socketio's server and client lifecycle names
        "connect",
        "connect_error",
        "disconnect",
        "__disconnect_final",
        # python-socketio's catch-all: a client event named "*" reaches it with
        # the wrong arguments
        "*",
        # reserved by the Node.js server (socket.io's RESERVED_EVENTS)
        "disconnecting",
        "newListener",
        "removeListener",
    }
)
"""Event names a client may not send: each names a lifecycle event, not an app event."""


class MalformedPacket(ValueError):
    """A packet that breaks the Socket.IO protocol: the connection is closed."""


def check_event(data: Any) -> str:
    """The event name of an EVENT packet's data; ``MalformedPacket`` unless ``[str, ...]``."""
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise MalformedPacket("an event's data must be an array starting with its name")
    return data[0]


def reserved_event(name: str) -> InvalidPayload:
    return InvalidPayload(
        f"{name[:100]!r} is a reserved event name; a client may not send it",
        {"event": name[:100]},
    )


class QuietLog:
    """At most one log line per ``interval`` seconds for input nobody should send.

    The lines a flood of garbage would cause are counted, not written: the next
    line says how many were left out (``suppressed``).
    """

    def __init__(
        self, event: str, *, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._event = event
        self._interval = interval
        self._clock = clock
        self._last = float("-inf")
        self.suppressed = 0

    def allow(self) -> bool:
        now = self._clock()
        if now - self._last < self._interval:
            self.suppressed += 1
            return False
        self._last = now
        return True

    def warning(self, **fields: Any) -> None:
        if not self.allow():
            return
        suppressed, self.suppressed = self.suppressed, 0
        structlog.get_logger("roomcast.gateway").warning(
            self._event, suppressed=suppressed, **fields
        )


class _QuietRecords(logging.Filter):
    """engine.io's and python-socketio's own lines: no traceback, rate-limited.

    Both libraries log a traceback (``logger.exception``) for a packet they cannot
    decode; the client chose that input, so the line is reduced to the exception's
    type and message, and only one such line is written per interval.
    """

    def __init__(self, quiet: QuietLog) -> None:
        super().__init__()
        self._quiet = quiet

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        # What these libraries call an error is a client's input (a bad session id,
        # a packet that does not decode), not a fault of the server: a warning.
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {str(exc)[:200]}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return self._quiet.allow()


def library_logger(name: str) -> logging.Logger:
    """A logger for engine.io / python-socketio (their ``logger=`` option).

    It propagates to the root handler (JSON like every other line); without it
    engine.io adds a plain-text stream handler of its own to ``engineio.server``.
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _QuietRecords) for f in logger.filters):
        logger.addFilter(_QuietRecords(QuietLog(name)))
    return logger
