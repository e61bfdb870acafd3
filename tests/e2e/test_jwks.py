"""Tokens from an identity provider: RS256/ES256 keys from ``ROOMCAST_JWKS_URL``, served
by the test itself on loopback, including rotation and a flood of unknown ``kid``s."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roomcast.config import Settings

from ..conftest import RunningServer, run_server
from .support import bearer

ISSUER = "https://idp.example"
AUDIENCE = "roomcast-api"


class Key:
    """A signing key of the provider: private half for the test, public JWK for the set."""

    def __init__(self, kid: str, alg: str) -> None:
        self.kid, self.alg = kid, alg
        if alg == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk |= {"kid": kid, "alg": alg, "use": "sig"}

    def token(self, sub: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
        payload |= claims
        return jwt.encode(payload, self.private, algorithm=self.alg, headers={"kid": self.kid})


class Provider:
    """The identity provider's JWKS endpoint on loopback; counts every fetch."""

    def __init__(self, *keys: Key) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self._changed = threading.Condition()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"keys": [k.jwk for k in provider.keys]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with provider._changed:
                    provider.fetches += 1
                    provider._changed.notify_all()

            def log_message(self, *_: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_port}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def wait_for_fetches(self, count: int, within: float = 20) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.fetches >= count, within), self.fetches

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def node_with(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``node_with(provider, **settings)``: a node verifying tokens with the provider's JWKS."""
    with contextlib.ExitStack() as stack:

        def make(provider: Provider, **extra: Any) -> RunningServer:
            stack.callback(provider.close)
            settings = Settings(
                database_url=database_url,
                data_dir=Path(tmp_path_factory.mktemp("jwks")),
                jwks_url=provider.url,
                jwt_issuer=ISSUER,
                jwt_audience=AUDIENCE,
                jwks_cooldown_seconds=3600,  # one on-demand fetch per test
                **extra,
            )
            return stack.enter_context(run_server(settings))

        yield make


def hs256_by_hand(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token signed with ``secret`` (pyjwt refuses a PEM key as an HMAC secret)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


async def status(server: RunningServer, token: str) -> tuple[int, str]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/api/rooms", headers=bearer(token))
    message = "" if response.status_code == 200 else response.json()["error"]["message"]
    return response.status_code, message


async def connects(server: RunningServer, token: str) -> bool:
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(server.url, auth={"token": token}, transports=["websocket"])
    except socketio.exceptions.ConnectionError:
        return False
    await client.disconnect()
    return True


async def test_rs256_and_es256_keys_of_the_set_verify(node_with: Any):
    rsa_key, ec_key = Key("r1", "RS256"), Key("e1", "ES256")
    server = node_with(Provider(rsa_key, ec_key))
    for key in (rsa_key, ec_key):
        assert await status(server, key.token(f"user-{key.kid}")) == (200, "")
        assert await connects(server, key.token(f"user-{key.kid}"))


async def test_tokens_the_set_does_not_vouch_for_are_refused(node_with: Any):
    known = Key("r1", "RS256")
    server = node_with(Provider(known))
    impostor = Key("r1", "RS256")  # same kid, another private key
    public_pem = known.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cases = {
        "wrong issuer": known.token("u", iss="https://other.example"),
        "wrong audience": known.token("u", aud="someone-else"),
        "expired": known.token("u", exp=int(time.time()) - 3600),
        "another key under the kid": impostor.token("u"),
        # The public key used as an HS256 secret: the header's alg never picks the key type.
        "alg confusion": hs256_by_hand(
            {"alg": "HS256", "typ": "JWT", "kid": "r1"},
            {"sub": "u", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60},
            public_pem,
        ),
        "no kid": jwt.encode(
            {"sub": "u", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60},
            known.private,
            algorithm="RS256",
        ),
    }
    for case, token in cases.items():
        code, message = await status(server, token)
        assert code == 401, case
        assert message.startswith("Authentication failed"), (case, message)
        assert not await connects(server, token), case


async def test_a_rotated_in_key_verifies_on_first_use_over_rest(node_with: Any):
    old = Key("2026-11", "RS256")
    provider = Provider(old)
    server = node_with(provider)
    assert await status(server, old.token("alice")) == (200, "")
    fetched = provider.fetches
    new = Key("2026-12", "ES256")
    provider.keys = [old, new]  # the provider publishes its next key, then signs with it
    assert await status(server, new.token("alice")) == (200, "")
    assert provider.fetches == fetched + 1
    # Made-up kids within the cooldown are refused without asking the provider again.
    for _ in range(20):
        forged = Key(uuid.uuid4().hex, "RS256")
        code, message = await status(server, forged.token("mallory"))
        assert code == 401
        assert "unknown signing key" in message
    assert provider.fetches == fetched + 1


async def test_a_rotated_in_key_verifies_on_first_use_on_socket_connect(node_with: Any):
    old = Key("a", "RS256")
    provider = Provider(old)
    server = node_with(provider)
    new = Key("b", "RS256")
    provider.keys = [new]
    assert await connects(server, new.token("bob"))


async def test_a_key_dropped_from_the_set_stops_verifying_at_the_next_refresh(node_with: Any):
    old, new = Key("old", "RS256"), Key("new", "RS256")
    provider = Provider(old, new)
    server = node_with(provider, jwks_refresh_seconds=0.2)
    assert await status(server, old.token("carol")) == (200, "")
    provider.keys = [new]
    provider.wait_for_fetches(provider.fetches + 2)  # one refresh certainly after the change
    code, message = await status(server, old.token("carol", jti=uuid.uuid4().hex))
    assert code == 401, message
    assert await status(server, new.token("carol")) == (200, "")


async def test_a_key_published_after_start_up_is_picked_up_by_the_refresh(node_with: Any):
    key = Key("k", "RS256")
    provider = Provider(key)
    keys = provider.keys
    provider.keys = []  # an empty set at start-up: nothing verifies yet
    server = node_with(provider, jwks_refresh_seconds=0.2)
    assert (await status(server, key.token("dave")))[0] == 401
    provider.keys = keys
    provider.wait_for_fetches(provider.fetches + 2)
    assert await status(server, key.token("dave")) == (200, "")
