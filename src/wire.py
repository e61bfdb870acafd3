"""The envelopes every edge answers with, REST and Socket.IO alike (seed 003's ack shape).

Success: ``{"success": true, "data": …}``.
Failure: ``{"success": false, "error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from roomcast.domain.errors import ErrorCode, Rejected

__all__ = ["ErrorBody", "Failure", "Success", "encode", "failure", "success"]


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    code: ErrorCode
    message: str
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class Success(msgspec.Struct, frozen=True, kw_only=True):
    success: bool = True
    data: Any = None


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    success: bool = False
    error: ErrorBody


_encoder = msgspec.json.Encoder()


def success(data: Any) -> Success:
    return Success(data=data)


def failure(exc: Rejected) -> Failure:
    return Failure(error=ErrorBody(code=exc.code, message=exc.message, details=exc.details))


def encode(envelope: Success | Failure) -> bytes:
    return _encoder.encode(envelope)
