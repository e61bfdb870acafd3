"""Bearer-token authentication for REST: who calls, a user or an app.

An app's token names the app (claim ``app``) and its ``permissions``; its
requests also carry ``X-App-Id`` (seed 003), which must name the same app. An
app acts as the user ``app:{appId}`` with an ``AppGrant``; deciders check the
grant's permissions where a user's role would be checked.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from litestar import Request

from roomcast.domain.errors import AppPermissionDenied, AuthenticationFailed, PermissionDenied
from roomcast.domain.state import AppGrant, UserRef
from roomcast.http.headers import header
from roomcast.tokens import ADMIN_ROLE, Claims, TokenVerifier

__all__ = [
    "Principal",
    "bearer_token",
    "caller_from",
    "claims_from",
    "principal_of",
    "require_admin",
]

Principal = tuple[UserRef, AppGrant | None]

_CACHE_SIZE = 4096
_verified: weakref.WeakKeyDictionary[TokenVerifier, dict[str, tuple[UserRef, float]]] = (
    weakref.WeakKeyDictionary()
)
"""Per verifier, token → (user, exp) for tokens it already checked. A client sends the same
bearer token with every request; its signature, issuer and audience do not change,
so only ``exp`` is checked again (the JWT check is ~4 % of a command's CPU)."""


def _verify(verifier: TokenVerifier, token: str) -> UserRef:
    known = _verified.get(verifier)
    if known is None:
        known = _verified[verifier] = {}
    hit = known.get(token)
    if hit is not None and hit[1] > time.time():
        return hit[0]
    claims = verifier.verify(token)  # raises AuthenticationFailed, e.g. once expired
    if len(known) >= _CACHE_SIZE:
        known.clear()  # crude but bounded; a miss only costs one full check
    known[token] = (claims.user, claims.expires_at)
    return claims.user


def bearer_token(request: Request[Any, Any, Any]) -> str:
    value = header(request.scope, b"authorization")
    if not value:
        raise AuthenticationFailed("Authentication failed: missing bearer token")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "Authentication failed: expected 'Authorization: Bearer <token>'"
        )
    return token.strip()


def claims_from(request: Request[Any, Any, Any], verifier: TokenVerifier) -> Claims:
    """The verified claims of the request's bearer token (signature, exp, revocation)."""
    return verifier.verify(bearer_token(request))


def principal_of(request: Request[Any, Any, Any], claims: Claims) -> Principal:
    """The caller as commands see it: a user, or an app with its grant."""
    if claims.app_id is None:
        return claims.user, None
    named = header(request.scope, b"x-app-id")
    if named != claims.app_id:
        raise AppPermissionDenied(
            f"an app's requests carry X-App-Id: {claims.app_id}, the app its token names",
            {"appId": claims.app_id, "header": "X-App-Id"},
        )
    app = AppGrant(app_id=claims.app_id, permissions=claims.permissions)
    return UserRef(id=f"app:{claims.app_id}", name=claims.user.name), app


def caller_from(request: Request[Any, Any, Any], verifier: TokenVerifier) -> UserRef:
    return principal_of(request, claims_from(request, verifier))[0]


def require_admin(claims: Claims) -> Claims:
    if not claims.is_admin:
        raise PermissionDenied("this endpoint needs the admin role", {"requiredRole": ADMIN_ROLE})
    return claims
