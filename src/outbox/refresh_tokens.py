"""The ``refresh_tokens`` table: issue, rotate, and revoke a family of refresh tokens.

Only ``sha256(token)`` is stored. A refresh marks its token used and inserts
the successor in one statement; a token that is already used, revoked or
expired rotates nothing, and ``inspect`` says which it was so the service can
decide (a used one means a copy of it is in someone else's hands).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import asyncpg
import msgspec

from roomcast.outbox.errors import map_db_errors

__all__ = ["Issued", "NewToken", "RefreshTokens", "TokenState", "expire_refresh_tokens"]


class TokenState(StrEnum):
    UNKNOWN = "unknown"
    USED = "used"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Issued(msgspec.Struct, frozen=True, kw_only=True):
    """The family and user of a refresh token that was just rotated."""

    family_id: str
    user_id: str
    user_name: str


class NewToken(msgspec.Struct, frozen=True, kw_only=True):
    """What one issued refresh token row records."""

    token_hash: bytes
    access_jti: str
    access_expires_at: datetime
    expires_at: datetime


_INSERT = """
    INSERT INTO refresh_tokens
        (token_hash, family_id, user_id, user_name, access_jti, access_expires_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

# The old row is locked by the UPDATE: of two refreshes with one token, the second
# finds it used and rotates nothing.
_ROTATE = """
    WITH used AS (
        UPDATE refresh_tokens SET used_at = now()
        WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
        RETURNING family_id, user_id, user_name
    ), fresh AS (
        INSERT INTO refresh_tokens
            (token_hash, family_id, user_id, user_name, access_jti, access_expires_at, expires_at)
        SELECT $2, family_id, user_id, user_name, $3, $4, $5 FROM used
        RETURNING family_id, user_id, user_name
    )
    SELECT family_id, user_id, user_name FROM fresh
"""

_INSPECT = """
    SELECT family_id, used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked,
           expires_at <= now() AS expired
    FROM refresh_tokens WHERE token_hash = $1
"""

_REVOKE_FAMILY = """
    WITH revoked AS (
        UPDATE refresh_tokens SET revoked_at = now()
        WHERE family_id = $1 AND revoked_at IS NULL
        RETURNING access_jti, access_expires_at
    )
    SELECT access_jti, access_expires_at FROM revoked WHERE access_expires_at > now()
"""

_EXPIRE = """
    DELETE FROM refresh_tokens
    WHERE ctid IN (
        SELECT ctid FROM refresh_tokens WHERE expires_at < now() - make_interval(secs => $1)
        LIMIT $2
    )
"""


class RefreshTokens:
    """The store side of the built-in issuer's refresh tokens."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def issue(self, token: NewToken, *, family_id: str, user_id: str, user_name: str) -> None:
        """Record the first token of a new family (a sign-in)."""
        with map_db_errors():
            await self._pool.execute(
                _INSERT,
                token.token_hash,
                family_id,
                user_id,
                user_name,
                token.access_jti,
                token.access_expires_at,
                token.expires_at,
            )

    async def rotate(self, old_hash: bytes, successor: NewToken) -> Issued | None:
        """Mark ``old_hash`` used and record its successor; None if it cannot be used."""
        with map_db_errors():
            row = await self._pool.fetchrow(
                _ROTATE,
                old_hash,
                successor.token_hash,
                successor.access_jti,
                successor.access_expires_at,
                successor.expires_at,
            )
        if row is None:
            return None
        return Issued(
            family_id=row["family_id"], user_id=row["user_id"], user_name=row["user_name"]
        )

    async def inspect(self, token_hash: bytes) -> tuple[TokenState, str | None]:
        """Why a token did not rotate, and its family (None for an unknown token)."""
        with map_db_errors():
            row = await self._pool.fetchrow(_INSPECT, token_hash)
        if row is None:
            return TokenState.UNKNOWN, None
        if row["revoked"]:
            return TokenState.REVOKED, row["family_id"]
        if row["used"]:
            return TokenState.USED, row["family_id"]
        return TokenState.EXPIRED, row["family_id"]

    async def revoke_family(self, family_id: str) -> list[tuple[str, datetime]]:
        """Revoke every token of the family; the access tokens still unexpired (jti, exp)."""
        with map_db_errors():
            rows = await self._pool.fetch(_REVOKE_FAMILY, family_id)
        return [(r["access_jti"], r["access_expires_at"]) for r in rows]


async def expire_refresh_tokens(
    pool: asyncpg.Pool, *, grace_seconds: float = 86400, batch: int = 5000
) -> int:
    """Delete rows expired for over ``grace_seconds``; returns how many."""
    removed = 0
    while True:
        with map_db_errors():
            status = await pool.execute(_EXPIRE, float(grace_seconds), batch)
        count = int(status.split()[-1])
        removed += count
        if count < batch:
            return removed
