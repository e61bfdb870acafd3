"""An identity provider's signing keys (JWKS), fetched off the event loop and cached.

``ROOMCAST_JWKS_URL`` names a JSON Web Key Set; each token's header ``kid``
picks its key. pyjwt parses the set (``PyJWKSet``) and builds the keys. Its
``PyJWKClient`` is not used to fetch: it calls ``urllib`` synchronously inside
token verification, which would stall every socket and request of the node
for as long as the identity provider takes to answer. Here the fetch runs in a
worker thread (``asyncio.to_thread``) and verification only reads the cache:

* at start-up and every ``refresh_every`` seconds, the whole set is fetched
  again (keys the provider dropped stop verifying then);
* a token whose ``kid`` is not in the cache makes ``ensure`` fetch at once, one
  fetch at a time (concurrent callers wait for the same one), and at most one
  such fetch per ``cooldown`` seconds, so a flood of made-up ``kid``s costs the
  provider one request per cooldown, not one per token.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import structlog

__all__ = ["ACCEPTED_ALGORITHMS", "JwksKeys", "fetch_json"]

log = structlog.get_logger("roomcast.jwks")

ACCEPTED_ALGORITHMS = frozenset({"RS256", "ES256"})
_FETCH_TIMEOUT = 5.0
_MAX_BYTES = 1024 * 1024


def fetch_json(url: str) -> Any:
    """GET ``url`` and parse it as JSON (blocking: call it in a thread)."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "roomcast-jwks"}
    )
    with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT) as response:
        return json.loads(response.read(_MAX_BYTES))


class JwksKeys:
    """The key set of one JWKS URL: ``get(kid)`` from memory, ``ensure(kid)`` fetches."""

    def __init__(
        self,
        url: str,
        *,
        refresh_every: float = 300.0,
        cooldown: float = 10.0,
        fetch: Callable[[str], Any] = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._refresh_every = refresh_every
        self._cooldown = cooldown
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._inflight: asyncio.Task[None] | None = None
        self._last_on_demand = -float("inf")
        self._background: set[asyncio.Task[None]] = set()
        self.fetches = 0
        """How many fetches were attempted (for /health and tests)."""

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def get(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)

    async def refresh(self) -> None:
        """Fetch the set now (joining a fetch already running); keeps the old set on failure."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._load(), name="jwks-fetch")
        await asyncio.shield(self._inflight)

    async def ensure(self, kid: str) -> None:
        """Make ``kid`` known if the provider has it: fetch, unless one ran within the
        cooldown (then ``get(kid)`` stays None and the token is refused)."""
        if kid in self._keys:
            return
        running = self._inflight is not None and not self._inflight.done()
        if not running:
            now = self._clock()
            if now - self._last_on_demand < self._cooldown:
                return
            self._last_on_demand = now
        try:
            await self.refresh()
        except Exception:
            return  # logged by _load; the token is refused, the cached set stays

    def request(self, kid: str) -> None:
        """``ensure`` in the background, for a synchronous caller that could not wait."""
        try:
            task = asyncio.get_running_loop().create_task(self.ensure(kid))
        except RuntimeError:
            return  # no loop (a CLI check): nothing to schedule
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run(self) -> None:
        """Refresh every ``refresh_every`` seconds until cancelled (sooner after a failure)."""
        backoff = 1.0
        while True:
            ok = await self._refresh_quietly()
            delay = self._refresh_every if ok else min(backoff, self._refresh_every)
            backoff = 1.0 if ok else min(backoff * 2, 60.0)
            await asyncio.sleep(delay)

    async def _refresh_quietly(self) -> bool:
        try:
            await self.refresh()
        except Exception:
            return False
        return True

    async def _load(self) -> None:
        self.fetches += 1
        try:
            data = await asyncio.to_thread(self._fetch, self.url)
            keys = _parse(data)
        except Exception as exc:
            log.warning("jwks_fetch_failed", url=self.url, error=repr(exc), kept=len(self._keys))
            raise
        added = sorted(set(keys) - set(self._keys))
        removed = sorted(set(self._keys) - set(keys))
        self._keys = keys
        if added or removed:
            log.info("jwks_keys_changed", url=self.url, added=added, removed=removed)


def _parse(data: Any) -> dict[str, jwt.PyJWK]:
    """The set's usable signing keys by kid: RS256/ES256 keys that carry a ``kid``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise ValueError("a JWKS is an object with a list of keys")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in data["keys"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(dict(entry))
        except jwt.PyJWTError:
            continue  # an algorithm or key type pyjwt cannot use: skip it, keep the rest
        if key.algorithm_name in ACCEPTED_ALGORITHMS:
            keys[entry["kid"]] = key
    return keys
