"""Refusals on the socket: the same envelope as REST, in the ack or as an ``error`` event."""

from __future__ import annotations

from typing import Any

import structlog

from roomcast import wire
from roomcast.domain.errors import ErrorCode, Rejected, ServiceUnavailable
from roomcast.outbox.errors import is_unavailable

__all__ = ["RETRY_AFTER_SECONDS", "as_ack", "as_error_event"]

RETRY_AFTER_SECONDS = 1
"""``details.retryAfter`` of a SERVICE_UNAVAILABLE refusal on the socket."""

log = structlog.get_logger("roomcast.gateway")


def as_ack(exc: BaseException) -> wire.Failure:
    """``{"success": false, "error": {"code", "message", "details"}}`` for any failure.

    Anything that is not a ``Rejected`` is a bug of ours: logged with its
    traceback, answered as INTERNAL_ERROR, never left without an answer.
    """
    if isinstance(exc, ServiceUnavailable) and "retryAfter" not in exc.details:
        # Seconds; the database is usually back within that (a client backs off further).
        exc.details["retryAfter"] = RETRY_AFTER_SECONDS
    if isinstance(exc, Rejected):
        return wire.failure(exc)
    if is_unavailable(exc):  # a database call that escaped map_db_errors
        log.warning("database_unavailable", error=repr(exc))
        return wire.failure(ServiceUnavailable("the database is unavailable; retry shortly"))
    log.error("socket_handler_failed", exc_info=exc)
    return wire.Failure(
        error=wire.ErrorBody(code=ErrorCode.INTERNAL_ERROR, message="internal error")
    )


def as_error_event(exc: BaseException) -> dict[str, Any]:
    """The ``error`` event's payload: ``{code, message, details}``."""
    error = as_ack(exc).error
    return {"code": error.code.value, "message": error.message, "details": error.details}
