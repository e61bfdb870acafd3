"""exp, nbf and iat by RFC 7519 (NumericDate: a JSON number, fractions allowed), one verifier."""

from __future__ import annotations

import time

import jwt
import pytest

from roomcast.domain.errors import AuthenticationFailed
from roomcast.tokens import TokenVerifier, check_times

SECRET = "unit-secret-0123456789-0123456789-0123"


def verifier() -> TokenVerifier:
    return TokenVerifier(secret=SECRET, issuer="roomcast", audience="roomcast")


def signed(**claims: object) -> str:
    base: dict[str, object] = {"sub": "usr_a", "iss": "roomcast", "aud": "roomcast"}
    return jwt.encode({**base, **claims}, SECRET, algorithm="HS256")


def test_a_fractional_exp_is_kept_as_the_expiry_instant():
    exp = time.time() + 120.75
    claims = verifier().verify(signed(exp=exp))
    assert claims.expires_at == pytest.approx(exp)


def test_a_fractional_exp_in_the_past_is_expired():
    with pytest.raises(AuthenticationFailed, match="expired"):
        verifier().verify(signed(exp=time.time() - 60.5))


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [str(int(time.time()) + 3600), "soon", True, None, [1], {"a": 1}])
def test_a_time_claim_that_is_not_a_number_is_refused(claim, value):
    claims: dict[str, object] = {"exp": time.time() + 3600, claim: value}
    with pytest.raises(AuthenticationFailed):
        verifier().verify(signed(**claims))


@pytest.mark.parametrize("value", [1e300, -1e300, 10**30])
def test_an_exp_beyond_any_date_is_refused(value):
    with pytest.raises(AuthenticationFailed, match="out of range"):
        verifier().verify(signed(exp=value))


def test_nbf_and_iat_in_the_future_are_refused_and_fractions_accepted():
    now = time.time()
    with pytest.raises(AuthenticationFailed, match="nbf"):
        verifier().verify(signed(exp=now + 3600, nbf=now + 600.5))
    with pytest.raises(AuthenticationFailed, match="iat"):
        verifier().verify(signed(exp=now + 3600, iat=now + 600.5))
    assert verifier().verify(signed(exp=now + 3600, nbf=now - 0.5, iat=now - 0.25))


def test_exp_is_required():
    with pytest.raises(AuthenticationFailed):
        verifier().verify(signed())


def test_check_times_applies_the_leeway():
    now = 1_000_000.0
    check_times({"exp": now - 5.5}, now)  # inside the 10 s leeway
    with pytest.raises(AuthenticationFailed):
        check_times({"exp": now - 10.5}, now)
