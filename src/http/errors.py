"""Every failure becomes the one error envelope, with the status its code maps to.

``STATUS`` is the single ErrorCode → HTTP status table; a test checks that every
code has one. Litestar's own exceptions (unknown route, malformed body,
validation) are translated into our codes; anything unexpected is logged with
its traceback and answered with a bare INTERNAL_ERROR, never the trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from roomcast import wire
from roomcast.domain.errors import ErrorCode, Rejected, ServiceUnavailable
from roomcast.outbox.errors import is_unavailable

__all__ = ["EXCEPTION_HANDLERS", "STATUS", "error_response"]

log = structlog.get_logger("roomcast.http")

STATUS: Mapping[ErrorCode, int] = {
    ErrorCode.INVALID_PAYLOAD: 400,
    ErrorCode.AUTHENTICATION_FAILED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.APP_PERMISSION_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ROOM_NOT_FOUND: 404,
    ErrorCode.PARTICIPANT_NOT_FOUND: 404,
    ErrorCode.PRIZE_NOT_FOUND: 404,
    ErrorCode.WINNER_NOT_FOUND: 404,
    ErrorCode.QUESTION_NOT_FOUND: 404,
    ErrorCode.NOTIFICATION_NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.INVALID_STATUS_TRANSITION: 409,
    ErrorCode.ROOM_NOT_ACTIVE: 409,
    ErrorCode.ROOM_CLOSED: 409,
    ErrorCode.ALREADY_PARTICIPANT: 409,
    ErrorCode.NOT_PARTICIPANT: 409,
    ErrorCode.PRIZE_EXHAUSTED: 409,
    ErrorCode.PRIZE_QUANTITY_TOO_LOW: 409,
    ErrorCode.NO_ELIGIBLE_PARTICIPANTS: 409,
    ErrorCode.QUESTION_CLOSED: 409,
    ErrorCode.ALREADY_ANSWERED: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 422,
    ErrorCode.RATE_LIMIT_EXCEEDED: 429,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,
    ErrorCode.TOO_MANY_SUBSCRIPTIONS: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.SLOW_CONSUMER: 503,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}

# Litestar raises HTTPExceptions of its own (routing, body parsing); by status:
_CODE_OF_STATUS: Mapping[int, ErrorCode] = {
    400: ErrorCode.INVALID_PAYLOAD,
    401: ErrorCode.AUTHENTICATION_FAILED,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.INVALID_PAYLOAD,
    429: ErrorCode.RATE_LIMIT_EXCEEDED,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


def error_response(
    code: ErrorCode,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    body = wire.Failure(
        error=wire.ErrorBody(code=code, message=message, details=dict(details or {}))
    )
    return Response(
        content=wire.encode(body),
        status_code=STATUS[code],
        media_type=MediaType.JSON,
        headers=dict(headers or {}),
    )


_RETRYABLE = (ErrorCode.RATE_LIMIT_EXCEEDED, ErrorCode.SERVICE_UNAVAILABLE)


def _rejected(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, Rejected)
    headers = {}
    if exc.code in _RETRYABLE:
        # Every 429 and 503 says when to come back, in the header and the details.
        exc.details.setdefault("retryAfter", 1)
        headers["Retry-After"] = str(exc.details["retryAfter"])
    return error_response(exc.code, exc.message, exc.details, headers)


def _http(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    code = _CODE_OF_STATUS.get(exc.status_code)
    if code is None:
        if exc.status_code >= 500:
            log.error("http_error", status=exc.status_code, detail=exc.detail)
            return error_response(ErrorCode.INTERNAL_ERROR, "internal error")
        code = ErrorCode.INVALID_PAYLOAD
    details: dict[str, Any] = {}
    message = exc.detail or code.value
    if isinstance(exc, ValidationException):
        message = "invalid request"
        if isinstance(exc.extra, list):
            details["errors"] = [_clean(e) for e in exc.extra]
            first = exc.extra[0] if exc.extra else None
            if isinstance(first, dict) and first.get("message"):
                message = f"invalid request: {first['message']}"
    headers = dict(exc.headers or {})
    if code in _RETRYABLE:
        headers.setdefault("Retry-After", "1")
        if headers["Retry-After"].isdigit():
            details.setdefault("retryAfter", int(headers["Retry-After"]))
    return error_response(code, message, details, headers)


def _clean(error: Any) -> Any:
    """Litestar's validation entries, without echoing the rejected value back."""
    if isinstance(error, dict):
        return {k: v for k, v in error.items() if k in ("key", "message", "source")}
    return str(error)


def _too_deep(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # The JSON decoder's answer to a body nested thousands deep: the client's input,
    # not our fault (it was a 500 with a traceback).
    return error_response(ErrorCode.INVALID_PAYLOAD, "invalid request: JSON nested too deep")


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if is_unavailable(exc):  # a database call that escaped map_db_errors: still a 503
        log.warning("database_unavailable", path=request.url.path, error=repr(exc))
        return _rejected(request, ServiceUnavailable("the database is unavailable; retry shortly"))
    log.error("unhandled_exception", path=request.url.path, exc_info=exc)
    return error_response(ErrorCode.INTERNAL_ERROR, "internal error")


EXCEPTION_HANDLERS = {
    Rejected: _rejected,
    HTTPException: _http,
    RecursionError: _too_deep,
    Exception: _unexpected,
}
