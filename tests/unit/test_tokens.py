"""Token claims: roles, and the revocation check inside verification."""

from __future__ import annotations

import jwt
import pytest

from roomcast import cli
from roomcast.domain.errors import AuthenticationFailed
from roomcast.tokens import TokenVerifier, mint

SECRET = "unit-secret-0123456789-0123456789-0123"


def verifier(revoked: set[str] | None = None) -> TokenVerifier:
    return TokenVerifier(
        secret=SECRET,
        issuer="roomcast",
        audience="roomcast",
        revoked=None if revoked is None else revoked.__contains__,
    )


def token(**extra: object) -> str:
    return mint(
        secret=SECRET,
        sub="usr_a",
        name=None,
        issuer="roomcast",
        audience="roomcast",
        ttl_seconds=60,
        extra=extra,
    )


@pytest.mark.parametrize(
    ("roles", "expected", "admin"),
    [
        (["admin"], ("admin",), True),
        (["organizer", "admin"], ("organizer", "admin"), True),
        ("admin", (), False),  # a string is not a list of roles
        ([1, "ops"], ("ops",), False),
        (None, (), False),
    ],
)
def test_the_roles_claim_is_read_as_a_list_of_strings(roles, expected, admin):
    claims = verifier().verify(token(**({} if roles is None else {"roles": roles})))
    assert claims.roles == expected
    assert claims.is_admin is admin


def test_a_revoked_jti_fails_authentication_saying_revoked():
    value = token()
    jti = jwt.decode(value, options={"verify_signature": False})["jti"]
    assert verifier(revoked={"another"}).verify(value).token_id == jti
    with pytest.raises(AuthenticationFailed, match="revoked"):
        verifier(revoked={jti}).verify(value)


def test_roomcast_token_role_mints_an_admin_token(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ROOMCAST_JWT_SECRET", SECRET)
    monkeypatch.setenv("ROOMCAST_DATA_DIR", str(tmp_path))
    assert cli.main(["token", "--sub", "ops", "--role", "admin", "--role", "audit"]) == 0
    claims = verifier().verify(capsys.readouterr().out.strip())
    assert claims.roles == ("admin", "audit")
    assert cli.main(["token"]) == 2  # minting needs --sub
    assert "--sub" in capsys.readouterr().err


def test_a_token_verified_before_is_still_refused_once_revoked():
    revoked: set[str] = set()
    checker = verifier(revoked)
    value = token()
    jti = jwt.decode(value, options={"verify_signature": False})["jti"]
    assert checker.verify(value).token_id == jti  # checked in full, then remembered
    revoked.add(jti)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        checker.verify(value)


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch):
    import datetime as real

    import jwt.api_jwt

    import roomcast.tokens as tokens

    checker = verifier()
    value = token()
    assert checker.verify(value).user.id == "usr_a"
    later = tokens.time.time() + 60 + 11  # past exp and the 10 s leeway

    class Later(real.datetime):
        @classmethod
        def now(cls, tz: real.tzinfo | None = None) -> Later:
            return cls.fromtimestamp(later, tz)

    monkeypatch.setattr(tokens.time, "time", lambda: later)  # our remembered tokens
    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)  # PyJWT's own exp check
    with pytest.raises(AuthenticationFailed, match="expired"):
        checker.verify(value)
