"""Bearer-token authentication for REST: the ``caller`` dependency."""

from __future__ import annotations

from typing import Any

from litestar import Request

from roomcast.domain.errors import AuthenticationFailed
from roomcast.domain.state import UserRef
from roomcast.tokens import TokenVerifier

__all__ = ["caller_from"]


def caller_from(request: Request[Any, Any, Any], verifier: TokenVerifier) -> UserRef:
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationFailed("Authentication failed: missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "Authentication failed: expected 'Authorization: Bearer <token>'"
        )
    return verifier.verify(token.strip()).user
