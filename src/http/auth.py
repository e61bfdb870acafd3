"""Bearer-token authentication for REST: the ``claims`` and ``caller`` dependencies."""

from __future__ import annotations

from typing import Any

from litestar import Request

from roomcast.domain.errors import AuthenticationFailed, PermissionDenied
from roomcast.domain.state import UserRef
from roomcast.tokens import ADMIN_ROLE, Claims, TokenVerifier

__all__ = ["bearer_token", "caller_from", "claims_from", "require_admin"]


def bearer_token(request: Request[Any, Any, Any]) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationFailed("Authentication failed: missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "Authentication failed: expected 'Authorization: Bearer <token>'"
        )
    return token.strip()


def claims_from(request: Request[Any, Any, Any], verifier: TokenVerifier) -> Claims:
    """The verified claims of the request's bearer token (signature, exp, revocation)."""
    return verifier.verify(bearer_token(request))


def caller_from(request: Request[Any, Any, Any], verifier: TokenVerifier) -> UserRef:
    return claims_from(request, verifier).user


def require_admin(claims: Claims) -> Claims:
    if not claims.is_admin:
        raise PermissionDenied("this endpoint needs the admin role", {"requiredRole": ADMIN_ROLE})
    return claims
