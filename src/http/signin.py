"""``POST /api/auth/token`` (sign in) and ``POST /api/auth/refresh``: the built-in issuer.

Both answer the success envelope with the token fields also at its top level:
seed 003's refresh handler reads ``data.accessToken`` from the parsed body.
Both read the body whatever its content type: the seed's ``fetch`` sends its
JSON without a ``Content-Type`` header (so the browser sends ``text/plain``),
and a ``text/plain`` POST needs no CORS preflight.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, post
from msgspec import Meta

from roomcast.domain.errors import ErrorCode, InvalidPayload, PayloadTooLarge
from roomcast.http.bodies import NO_CONTROL
from roomcast.http.deps import Issuer
from roomcast.http.openapi import NONE, answers
from roomcast.http.responses import SuccessResponse
from roomcast.service.auth import TokenPair

__all__ = ["RefreshBody", "SignInBody", "TokenResponse", "refresh", "sign_in"]

_MAX_BODY = 4096


class SignInBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_CONTROL)]
    """Who signs in; the same name is the same user (its id is derived from it)."""
    passcode: Annotated[str, Meta(max_length=256)] | None = None
    """Needed when the operator set ``ROOMCAST_SIGNIN_PASSCODE``."""


class RefreshBody(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=2048)]


class TokenResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The envelope with the pair in ``data``, and its three fields beside it."""

    success: bool
    data: TokenPair
    access_token: str
    refresh_token: str
    expires_in: int


_ISSUER_ERRORS = {
    ErrorCode.INVALID_PAYLOAD,
    ErrorCode.PAYLOAD_TOO_LARGE,
    ErrorCode.AUTHENTICATION_FAILED,  # a wrong passcode, a used or revoked refresh token
    ErrorCode.NOT_FOUND,  # the built-in issuer is off
    ErrorCode.SERVICE_UNAVAILABLE,
    ErrorCode.INTERNAL_ERROR,
}

_sign_in_body = msgspec.json.Decoder(SignInBody)
_refresh_body = msgspec.json.Decoder(RefreshBody)
_encoder = msgspec.json.Encoder()


async def _body(request: Request[Any, Any, Any], decoder: msgspec.json.Decoder[Any]) -> Any:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise PayloadTooLarge(f"the body is over {_MAX_BODY} bytes", {"limit": _MAX_BODY})
    try:
        return decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidPayload(f"invalid request: {exc}") from None


def _answer(pair: TokenPair, status_code: int) -> SuccessResponse:
    body = _encoder.encode(
        TokenResponse(
            success=True,
            data=pair,
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # Tokens must not sit in a shared cache (RFC 6749 §5.1).
        (b"cache-control", b"no-store"),
    ]
    return SuccessResponse(body, status_code, headers)


@post(
    "/api/auth/token",
    status_code=200,
    tags=["auth"],
    summary="Sign in by name (built-in issuer): an access token and a refresh token",
    opt=answers(
        _ISSUER_ERRORS,
        body=TokenResponse,
        success_headers=("Cache-Control",),
        security=NONE,
        request_body=SignInBody,
    ),
)
async def sign_in(request: Request[Any, Any, Any], issuer: Issuer) -> SuccessResponse:
    body: SignInBody = await _body(request, _sign_in_body)
    return _answer(await issuer.sign_in(body.name, body.passcode), 200)


@post(
    "/api/auth/refresh",
    status_code=200,
    tags=["auth"],
    summary="A new token pair for a refresh token (which is used up; reuse revokes its family)",
    opt=answers(
        _ISSUER_ERRORS,
        body=TokenResponse,
        success_headers=("Cache-Control",),
        security=NONE,
        request_body=RefreshBody,
    ),
)
async def refresh(request: Request[Any, Any, Any], issuer: Issuer) -> SuccessResponse:
    body: RefreshBody = await _body(request, _refresh_body)
    return _answer(await issuer.refresh(body.refresh_token), 200)
