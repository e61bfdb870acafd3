"""structlog set-up: JSON lines in production (or when not on a terminal), readable otherwise."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import msgspec
import structlog

__all__ = ["configure_logging"]

_json = msgspec.json.Encoder(enc_hook=repr)


def _dumps(obj: Any, **_: Any) -> str:
    # structlog passes `default=`; msgspec's encode takes no keywords. The stdlib
    # formatter that renders the line wants text, not bytes.
    return _json.encode(obj).decode()


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


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    production: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and route the stdlib loggers (uvicorn, asyncpg) through it.

    Our own lines are rendered by structlog and written straight to stderr; only
    other libraries' lines go through the stdlib ``logging`` machinery, whose
    caller lookup and record objects cost several times the rendering.
    """
    stream = sys.stderr if stream is None else stream
    as_json = fmt == "json" or (fmt == "auto" and (production or not stream.isatty()))
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
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
