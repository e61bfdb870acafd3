"""The built-in token issuer: sign in by name, refresh with rotating refresh tokens.

For development and small deployments without an identity provider
(docs/api.md "Signing in"). A sign-in starts a *family*: one access token (a
short-lived JWT) and one refresh token (random, opaque, stored only as its
SHA-256). Each refresh uses up its refresh token and returns a new pair of the
same family. A used refresh token presented again means two parties hold it:
the whole family is revoked, and with it the access tokens it minted (through
the revoked-token set every node checks), so the thief and the victim both
have to sign in again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import NoReturn

import msgspec
import structlog

from roomcast.domain.errors import AuthenticationFailed, InvalidPayload
from roomcast.domain.state import UserRef
from roomcast.outbox.refresh_tokens import NewToken, RefreshTokens, TokenState
from roomcast.tokens import mint

__all__ = ["Revoke", "TokenIssuer", "TokenPair", "user_id_for"]

log = structlog.get_logger("roomcast.auth")

Revoke = Callable[[str, datetime, str], Awaitable[None]]
"""``revoke(jti, expires_at, revoked_by)``: refuse an access token on every node."""

_REFRESH_PREFIX = "rt_"
_PLAIN_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,47}")


class TokenPair(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What a sign-in or a refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds until ``accessToken`` expires."""
    token_type: str = "Bearer"
    user: UserRef


def user_id_for(name: str) -> str:
    """The user id a name signs in as: the same name is always the same user.

    A name that is already a plain id (``alice``, ``bob.smith``) is its own id,
    folded to lower case; any other name gets a slug and a short hash of itself,
    so that ``Zoë`` and ``Zoe`` stay two users.
    """
    folded = "-".join(name.casefold().split())
    if _PLAIN_ID.fullmatch(folded):
        return folded
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:32] or "user"
    digest = hashlib.sha256(name.casefold().encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenIssuer:
    """Signs users in and refreshes their tokens (HS256, the node's own secret)."""

    def __init__(
        self,
        store: RefreshTokens,
        *,
        secret: str,
        issuer: str,
        audience: str,
        access_ttl_seconds: int,
        refresh_ttl_seconds: int,
        revoke: Revoke,
        now: Callable[[], datetime],
        passcode: str | None = None,
    ) -> None:
        self._store = store
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._access_ttl = access_ttl_seconds
        self._refresh_ttl = refresh_ttl_seconds
        self._revoke = revoke
        self._now = now
        self._passcode = passcode

    async def sign_in(self, name: str, passcode: str | None = None) -> TokenPair:
        """A new family for the user ``name`` stands for (see ``user_id_for``)."""
        if self._passcode is not None and not (
            passcode is not None and hmac.compare_digest(passcode.encode(), self._passcode.encode())
        ):
            raise AuthenticationFailed("Authentication failed: wrong or missing passcode")
        display = " ".join(name.split())
        if not display:
            raise InvalidPayload("name must not be blank", {"field": "name"})
        user = UserRef(id=user_id_for(display), name=display)
        refresh, row, access = self._new_pair(user)
        await self._store.issue(
            row, family_id=f"fam_{secrets.token_hex(12)}", user_id=user.id, user_name=user.name
        )
        log.info("signed_in", user_id=user.id)
        return TokenPair(
            access_token=access, refresh_token=refresh, expires_in=self._access_ttl, user=user
        )

    async def refresh(self, refresh_token: str) -> TokenPair:
        """The next pair of ``refresh_token``'s family; the token itself is used up."""
        if not refresh_token.startswith(_REFRESH_PREFIX):
            raise AuthenticationFailed("Authentication failed: not a refresh token")
        old = _hash(refresh_token)
        placeholder = UserRef(id="", name="")
        refresh, row, _ = self._new_pair(placeholder, sign=False)
        issued = await self._store.rotate(old, row)
        if issued is None:
            await self._refused(old)
        user = UserRef(id=issued.user_id, name=issued.user_name)
        access = self._sign(user, row.access_jti, row.access_expires_at)
        return TokenPair(
            access_token=access, refresh_token=refresh, expires_in=self._access_ttl, user=user
        )

    async def _refused(self, token_hash: bytes) -> NoReturn:
        state, family = await self._store.inspect(token_hash)
        if state is TokenState.USED and family is not None:
            # Someone else refreshed with this token first: revoke everything it led to.
            minted = await self._store.revoke_family(family)
            for jti, expires_at in minted:
                await self._revoke(jti, expires_at, "refresh-token-reuse")
            log.warning("refresh_token_reused", family_id=family, access_tokens=len(minted))
            raise AuthenticationFailed(
                "Authentication failed: refresh token already used; its sessions are revoked",
                {"reason": "reused"},
            )
        reason = {
            TokenState.UNKNOWN: "unknown refresh token",
            TokenState.REVOKED: "refresh token revoked",
            TokenState.EXPIRED: "refresh token expired",
        }.get(state, "refresh token not accepted")
        raise AuthenticationFailed(f"Authentication failed: {reason}", {"reason": state.value})

    def _new_pair(self, user: UserRef, *, sign: bool = True) -> tuple[str, NewToken, str]:
        now = self._now()
        refresh = _REFRESH_PREFIX + secrets.token_urlsafe(32)
        row = NewToken(
            token_hash=_hash(refresh),
            access_jti=secrets.token_hex(16),
            access_expires_at=now + timedelta(seconds=self._access_ttl),
            expires_at=now + timedelta(seconds=self._refresh_ttl),
        )
        access = self._sign(user, row.access_jti, row.access_expires_at) if sign else ""
        return refresh, row, access

    def _sign(self, user: UserRef, jti: str, expires_at: datetime) -> str:
        return mint(
            secret=self._secret,
            sub=user.id,
            name=user.name,
            issuer=self._issuer,
            audience=self._audience,
            ttl_seconds=self._access_ttl,
            now=self._now().timestamp(),
            # exp exactly as recorded: a family's revocation is kept until then.
            extra={"jti": jti, "exp": int(expires_at.timestamp())},
        )
