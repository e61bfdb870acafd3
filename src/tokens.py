"""JWT verification (REST and Socket.IO share it) and minting of development tokens."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt
import msgspec

from roomcast.domain.errors import AuthenticationFailed
from roomcast.domain.state import UserRef
from roomcast.jwks import JwksKeys

__all__ = ["ADMIN_ROLE", "Claims", "TokenVerifier", "check_times", "mint"]

_LEEWAY_SECONDS = 10
_MAX_NUMERIC_DATE = 253402300799
"""9999-12-31T23:59:59Z: later dates do not fit a ``datetime``."""
_KNOWN_TOKENS = 4096

ADMIN_ROLE = "admin"


class Claims(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified token says about its holder."""

    user: UserRef
    expires_at: float
    """The ``exp`` claim, Unix seconds (RFC 7519 NumericDate: fractions allowed)."""
    token_id: str | None = None
    app_id: str | None = None
    """Set for an app's token (claim ``app``): the holder acts as that app."""
    permissions: tuple[str, ...] = ()
    """An app token's grants (claim ``permissions``), e.g. ``realtime:publish``."""
    roles: tuple[str, ...] = ()
    """The ``roles`` claim (a list of strings); ``"admin"`` opens the operator endpoints."""

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


class TokenVerifier:
    """Checks signature, ``exp``, ``iss``, ``aud`` and revocation; HS256 secret, RS256 key,
    and/or an identity provider's JWKS (RS256/ES256 by ``kid``).

    ``revoked(jti)`` answers from memory (``outbox.revocations.Revocations``), so
    verification stays synchronous. A token without a ``jti`` cannot be revoked.
    """

    def __init__(
        self,
        *,
        secret: str | None,
        public_key: str | None = None,
        issuer: str,
        audience: str,
        revoked: Callable[[str], bool] | None = None,
        jwks: JwksKeys | None = None,
    ) -> None:
        self._revoked = revoked
        self._jwks = jwks
        self._static: tuple[str, list[str]] | None = None
        """The one key a token without a JWKS ``kid`` is checked with, and its algorithm."""
        if public_key:
            if not public_key.lstrip().startswith("-----BEGIN"):
                public_key = Path(public_key).read_text()
            self._static = (public_key, ["RS256"])
        elif secret:
            self._static = (secret, ["HS256"])
        elif jwks is None:
            raise ValueError("a JWT secret, a public key or a JWKS is required")
        self._issuer = issuer
        self._audience = audience
        self._known: dict[str, Claims] = {}
        """Tokens whose signature, issuer and audience were checked: a client sends the
        same token with every request, and the JWT check is ~4 % of a command's CPU.
        Expiry and revocation are checked again on every use."""

    async def prepare(self, token: str) -> None:
        """Fetch the JWKS if ``token`` names a key not seen yet (rate-limited,
        ``jwks.JwksKeys.ensure``), so that ``verify`` finds it; otherwise nothing."""
        if self._jwks is not None and token not in self._known:
            kid = _kid(token)
            if kid is not None and self._jwks.get(kid) is None:
                await self._jwks.ensure(kid)

    async def verify_async(self, token: str) -> Claims:
        """``prepare``, then ``verify``: for callers that may wait for a key fetch."""
        await self.prepare(token)
        return self.verify(token)

    def verify(self, token: str) -> Claims:
        """The token's claims; ``AuthenticationFailed`` saying why if it is not acceptable."""
        claims = self._known.get(token)
        if claims is None or claims.expires_at + _LEEWAY_SECONDS <= time.time():
            self._known.pop(token, None)
            claims = self._decode(token)
            if len(self._known) >= _KNOWN_TOKENS:
                self._known.clear()  # crude but bounded: a miss costs one full check
            self._known[token] = claims
        if claims.token_id and self._revoked is not None and self._revoked(claims.token_id):
            raise AuthenticationFailed("Authentication failed: token revoked")
        return claims

    def _decode(self, token: str) -> Claims:
        key, algorithms = self._key_for(token)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=_LEEWAY_SECONDS,
                # The time claims are checked by `check_times`, by RFC 7519's rules:
                # PyJWT reads them with int(), so "exp": "99999999999" passed it.
                options={
                    "require": ["exp", "sub", "iss", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"Authentication failed: {exc}") from None
        check_times(payload, time.time())
        return _claims(payload)

    def _key_for(self, token: str) -> tuple[Any, list[str]]:
        """The key and the one algorithm this token may be verified with.

        A token whose ``kid`` is in the JWKS is checked with that key and its
        algorithm only (RS256 or ES256); any other with the static secret or public
        key. The header's ``alg`` never chooses a key type: an RS256 public key is
        never used as an HS256 secret.
        """
        if self._jwks is not None:
            kid = _kid(token)
            if kid is not None:
                key = self._jwks.get(kid)
                if key is not None:
                    return key.key, [key.algorithm_name]
                self._jwks.request(kid)  # a synchronous caller: fetched for the next try
                if self._static is None:
                    raise AuthenticationFailed(
                        f"Authentication failed: unknown signing key {kid[:64]!r}"
                    )
        if self._static is None:
            raise AuthenticationFailed("Authentication failed: token names no signing key (kid)")
        return self._static


def _kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None  # decoding the whole token says what is wrong with it
    return kid if isinstance(kid, str) and kid else None


def _numeric_date(payload: Mapping[str, object], claim: str) -> float | None:
    value = payload.get(claim)
    if value is None and claim not in payload:
        return None
    # A NumericDate is a JSON number (RFC 7519 §2): not a string, not a boolean.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationFailed(f"Authentication failed: the {claim} claim must be a number")
    number = float(value)
    if not math.isfinite(number) or abs(number) > _MAX_NUMERIC_DATE:
        raise AuthenticationFailed(f"Authentication failed: the {claim} claim is out of range")
    return number


def check_times(payload: Mapping[str, object], now: float) -> None:
    """``exp``, ``nbf`` and ``iat`` by RFC 7519, with the leeway; ``AuthenticationFailed``."""
    exp = _numeric_date(payload, "exp")
    nbf = _numeric_date(payload, "nbf")
    iat = _numeric_date(payload, "iat")
    if exp is not None and exp + _LEEWAY_SECONDS <= now:
        raise AuthenticationFailed("Authentication failed: token expired")
    if nbf is not None and nbf - _LEEWAY_SECONDS > now:
        raise AuthenticationFailed("Authentication failed: token not yet valid (nbf)")
    if iat is not None and iat - _LEEWAY_SECONDS > now:
        raise AuthenticationFailed("Authentication failed: token issued in the future (iat)")


def _claims(payload: Mapping[str, object]) -> Claims:
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthenticationFailed("Authentication failed: token has no subject")
    name = payload.get("name")
    avatar = payload.get("avatar")
    exp = payload.get("exp")
    jti = payload.get("jti")
    app = payload.get("app")
    permissions = payload.get("permissions")
    if app is not None and (not isinstance(app, str) or not app):
        raise AuthenticationFailed("Authentication failed: the app claim must be a string")
    if permissions is not None and (
        not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions)
    ):
        raise AuthenticationFailed("Authentication failed: permissions must be a list of strings")
    return Claims(
        user=UserRef(
            id=sub,
            name=name if isinstance(name, str) and name else sub,
            avatar=avatar if isinstance(avatar, str) else None,
        ),
        expires_at=float(exp)
        if isinstance(exp, int | float) and not isinstance(exp, bool)
        else 0.0,
        token_id=jti if isinstance(jti, str) else None,
        app_id=app,
        permissions=tuple(permissions or ()),
        roles=_roles(payload.get("roles")),
    )


def _roles(value: object) -> tuple[str, ...]:
    # A malformed claim grants nothing rather than failing the whole token.
    if isinstance(value, list):
        return tuple(r for r in value if isinstance(r, str))
    return ()


def mint(
    *,
    secret: str,
    sub: str,
    name: str | None,
    issuer: str,
    audience: str,
    ttl_seconds: int,
    now: float | None = None,
    extra: Mapping[str, object] | None = None,
) -> str:
    """An HS256 token for development and tests."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "sub": sub,
        "name": name or sub,
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm="HS256")
