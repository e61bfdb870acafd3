"""``POST /api/auth/revoke``: revoke the presented token, or (admin) any token by ``jti``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, post
from msgspec import UNSET, Meta, UnsetType

from roomcast.domain.errors import ErrorCode, InvalidPayload, PermissionDenied
from roomcast.http.deps import Claimed, Clock, Revoker
from roomcast.http.openapi import ANY_TOKEN, AUTHENTICATED, answers
from roomcast.http.responses import SuccessResponse, ok
from roomcast.tokens import ADMIN_ROLE

__all__ = ["RevokeBody", "revoke"]


class RevokeBody(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    jti: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    """Another token's id (admin only). Absent: the token that authenticates this request."""
    expires_at: Annotated[float, Meta(ge=0, le=253402300799)] | UnsetType = UNSET
    """That token's ``exp`` (Unix seconds, a JSON number: RFC 7519 allows fractions, and
    1357.0 is an integer to JSON Schema), if known: the revocation is kept until then.
    Unknown: ``ROOMCAST_REVOCATION_RETENTION`` from now."""


class Revoked(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    jti: str
    expires_at: datetime


_decoder = msgspec.json.Decoder(RevokeBody)


@post(
    "/api/auth/revoke",
    status_code=200,
    tags=["auth"],
    summary="Revoke a token by jti: refused on REST and socket connect on every node",
    opt=answers(
        AUTHENTICATED
        | {ErrorCode.PERMISSION_DENIED, ErrorCode.NOT_FOUND, ErrorCode.PAYLOAD_TOO_LARGE},
        data=Revoked,
        security=ANY_TOKEN,
        request_body=RevokeBody,
        request_body_required=False,
    ),
)
async def revoke(
    request: Request[Any, Any, Any], claims: Claimed, revoker: Revoker, sources: Clock
) -> SuccessResponse:
    raw = await request.body()
    try:
        body = _decoder.decode(raw) if raw.strip() else RevokeBody()
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidPayload(f"invalid request: {exc}") from None
    own = claims.token_id
    target = own if isinstance(body.jti, UnsetType) else body.jti
    if target is None:
        raise InvalidPayload("this token has no jti claim, so it cannot be revoked")
    if target != own and not claims.is_admin:
        raise PermissionDenied(
            "only an admin may revoke another token", {"requiredRole": ADMIN_ROLE}
        )
    if target == own:
        expires_at = datetime.fromtimestamp(claims.expires_at, UTC)
    elif not isinstance(body.expires_at, UnsetType):
        expires_at = datetime.fromtimestamp(body.expires_at, UTC)
    else:
        expires_at = sources.now() + timedelta(seconds=revoker.retention_seconds)
    await revoker.revoke(target, expires_at=expires_at, revoked_by=claims.user.id)
    result = Revoked(jti=target, expires_at=expires_at)
    return ok(result)
