"""structlog set-up: JSON lines in production (or when not on a terminal), readable otherwise."""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog

__all__ = ["configure_logging"]

_json = msgspec.json.Encoder(enc_hook=repr)


def _dumps(obj: Any, **_: Any) -> str:
    # structlog passes `default=`; msgspec's encode takes no keywords. The stdlib
    # formatter that renders the line wants text, not bytes.
    return _json.encode(obj).decode()


def configure_logging(*, level: str = "info", fmt: str = "auto", production: bool = False) -> None:
    """Configure structlog and route the stdlib loggers (uvicorn, asyncpg) through it."""
    as_json = fmt == "json" or (fmt == "auto" and (production or not sys.stderr.isatty()))
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
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
