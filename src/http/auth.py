"""Bearer-token authentication for REST: who calls, a user or an app.

An app's token names the app (claim ``app``) and its ``permissions``; its
requests also carry ``X-App-Id`` (seed 003), which must name the same app. An
app acts as the user ``app:{appId}`` with an ``AppGrant``; deciders check the
grant's permissions where a user's role would be checked.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from roomcast.domain.errors import AppPermissionDenied, AuthenticationFailed
from roomcast.domain.state import AppGrant, UserRef
from roomcast.tokens import TokenVerifier

__all__ = ["Principal", "caller_from", "principal_from"]

Principal = tuple[UserRef, AppGrant | None]


def principal_from(request: Request[Any, Any, Any], verifier: TokenVerifier) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationFailed("Authentication failed: missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "Authentication failed: expected 'Authorization: Bearer <token>'"
        )
    claims = verifier.verify(token.strip())
    if claims.app_id is None:
        return claims.user, None
    named = request.headers.get("x-app-id")
    if named != claims.app_id:
        raise AppPermissionDenied(
            f"an app's requests carry X-App-Id: {claims.app_id}, the app its token names",
            {"appId": claims.app_id, "header": "X-App-Id"},
        )
    app = AppGrant(app_id=claims.app_id, permissions=claims.permissions)
    return UserRef(id=f"app:{claims.app_id}", name=claims.user.name), app


def caller_from(request: Request[Any, Any, Any], verifier: TokenVerifier) -> UserRef:
    return principal_from(request, verifier)[0]
