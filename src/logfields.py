"""Fields that every log line of one request carries (its request id, the command it ran).

One context variable holds one dict per request: ``request_scope`` sets it,
``bind`` adds to it, and ``merge`` (a structlog processor) copies it into each
line. structlog's own ``contextvars`` helpers keep a context variable per key
and walk the whole context on every line; for the one access line per request
that cost ~4 µs of a command's ~150 µs (P1, bench/README.md).

Tasks started during the request copy the context, so they share the dict and
see fields bound later: the fields describe the request, not a moment of it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from contextvars import ContextVar, Token
from typing import Any

__all__ = ["bind", "merge", "request_scope"]

_fields: ContextVar[dict[str, Any] | None] = ContextVar("roomcast_log_fields", default=None)


class request_scope:  # lower case: used like a function, ``with request_scope(...)``
    """Lines logged inside carry ``fields`` and whatever ``bind`` adds; none after.

    A class rather than ``@contextmanager``: a third of the cost, once per request.
    """

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        self._token: Token[dict[str, Any] | None] = _fields.set(self._fields)

    def __exit__(self, *_: object) -> None:
        _fields.reset(self._token)


def bind(**fields: Any) -> None:
    """Add ``fields`` to the current request's lines; outside a request, nothing."""
    current = _fields.get()
    if current is not None:
        current.update(fields)


def merge(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the request's fields, under those the line sets itself."""
    current = _fields.get()
    if current:
        for key, value in current.items():
            event_dict.setdefault(key, value)
    return event_dict
