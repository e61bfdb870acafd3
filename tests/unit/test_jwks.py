"""JwksKeys: keys by kid from a set, one fetch at a time, on-demand fetches rate-limited."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roomcast.jwks import JwksKeys


def rsa_jwk(kid: str, **extra: Any) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key)) | {"kid": kid, **extra}


def ec_jwk(kid: str) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key)) | {"kid": kid}


class FakeProvider:
    def __init__(self, *keys: dict[str, Any]) -> None:
        self.document: Any = {"keys": list(keys)}
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, url: str) -> Any:
        self.calls += 1
        self.gate.wait(10)
        if isinstance(self.document, Exception):
            raise self.document
        return self.document


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_usable_signing_keys_are_kept_by_kid():
    provider = FakeProvider(
        rsa_jwk("r"),
        ec_jwk("e"),
        rsa_jwk("enc", use="enc"),
        {"kid": "odd", "kty": "oct", "k": "c2VjcmV0"},  # a symmetric key: never accepted
        {"kty": "RSA"},  # no kid
    )
    keys = JwksKeys("http://idp/jwks", fetch=provider)
    await keys.refresh()
    assert keys.kids == {"r", "e"}
    assert keys.get("r").algorithm_name == "RS256"
    assert keys.get("e").algorithm_name == "ES256"


async def test_unknown_kids_fetch_once_per_cooldown():
    provider = FakeProvider(rsa_jwk("a"))
    clock = Clock()
    keys = JwksKeys("http://idp/jwks", fetch=provider, cooldown=10, clock=clock)
    await keys.refresh()
    provider.document = {"keys": [rsa_jwk("a"), rsa_jwk("b")]}
    await keys.ensure("b")
    assert keys.get("b") is not None
    assert provider.calls == 2
    for kid in ("x", "y", "z"):
        await keys.ensure(kid)
    assert provider.calls == 2  # within the cooldown: no more fetches
    await keys.ensure("a")  # a known kid never fetches
    clock.now += 10
    await keys.ensure("x")
    assert provider.calls == 3


async def test_concurrent_callers_share_one_fetch():
    provider = FakeProvider(rsa_jwk("a"))
    provider.gate.clear()
    keys = JwksKeys("http://idp/jwks", fetch=provider, cooldown=0)
    waiting = [asyncio.create_task(keys.ensure("a")) for _ in range(10)]
    # Answer only once every caller has started (the ready queue is FIFO).
    asyncio.get_running_loop().call_soon(provider.gate.set)
    await asyncio.gather(*waiting)
    assert provider.calls == 1
    assert keys.get("a") is not None


async def test_a_failed_fetch_keeps_the_keys_it_had():
    provider = FakeProvider(rsa_jwk("a"))
    keys = JwksKeys("http://idp/jwks", fetch=provider, cooldown=0)
    await keys.refresh()
    provider.document = OSError("connection refused")
    await keys.ensure("b")  # logged, not raised: the token is just refused
    assert keys.kids == {"a"}
    provider.document = {"nope": 1}
    await keys.ensure("b")
    assert keys.kids == {"a"}
