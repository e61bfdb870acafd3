"""A socket opened with a token whose exp is fractional is ended at that instant.

RFC 7519 allows fractions in a NumericDate; the gateway's expiry timer used to be
set only for an integer ``exp`` (a fractional one never expired on a socket).
"""

from __future__ import annotations

import time

import jwt

from ..conftest import JWT_SECRET
from .rawsocket import RawSocket
from .support import bearer, user_id


def fractional_token(server, ttl: float) -> str:
    claims = {
        "sub": user_id(),
        "iss": server.settings.jwt_issuer,
        "aud": server.settings.jwt_audience,
        "iat": time.time(),
        "exp": time.time() + ttl,
        "jti": f"jti-{time.time_ns()}",
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


async def test_a_fractional_exp_ends_the_open_socket_at_expiry(server):
    value = fractional_token(server, 1.5)
    raw = await RawSocket.connected(server, value)
    notice = await raw.event("token:expired", within=15)
    assert notice["reason"] == "expired"
    await raw.next_matching(lambda f: f.startswith("41"), within=15)  # DISCONNECT
    await raw.close()


async def test_a_string_exp_is_refused_on_rest_and_on_connect(server, http):
    claims = {
        "sub": user_id(),
        "iss": server.settings.jwt_issuer,
        "aud": server.settings.jwt_audience,
        "exp": str(int(time.time()) + 3600),
    }
    value = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    response = await http.get("/api/rooms/room_nope", headers=bearer(value))
    assert response.status_code == 401
    raw = await RawSocket.open(server)
    await raw.send('40{"token":"' + value + '"}')
    refused = await raw.next_matching(lambda f: f.startswith("44"))
    assert "AUTHENTICATION_FAILED" in refused
    await raw.close()
