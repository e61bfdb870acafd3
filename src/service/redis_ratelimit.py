"""Rate limits that hold across every node: one sliding log per key in Redis.

The same limit as ``RateLimiter`` (at most ``limit`` hits in any ``period``
seconds), kept in a sorted set ``roomcast:limit:<name>:<key>`` whose members
are the admitted hits, scored by when they happened. One Lua script prunes the
window, counts, and admits or refuses, so two nodes admitting at once cannot
both take the last place. The time is Redis's own (``TIME``): the nodes' clocks
never have to agree.

Redis trouble never fails a request and never makes it wait long: a call that
fails (or takes longer than ``timeout``) is answered by a per-process
``RateLimiter`` instead (each node then enforces the whole limit on its own
share, as without Redis), and Redis is not asked again before a capped backoff
(``MIN_BACKOFF`` doubling to ``MAX_BACKOFF``), and then by one request at a time.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from roomcast.service.ratelimit import RateLimiter, exceeded

__all__ = ["RedisBreaker", "RedisRateLimiter", "limits_client"]

log = structlog.get_logger("roomcast.ratelimit")

MIN_BACKOFF = 0.05
MAX_BACKOFF = 1.0
"""Seconds before Redis is asked again after a failure (issue 19: <= 1 s)."""

_TIMEOUT = 0.25
"""Seconds a limit check may wait for Redis before the local limit answers."""

# Returns {1, 0} when admitted, {0, microseconds until a place frees} when refused.
# Scores are microseconds of Redis's clock: below 2^53, exact in Lua's doubles.
_SLIDING_LOG = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + period - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(period / 1000))
return {1, 0}
"""


def limits_client(url: str) -> Any:
    """The Redis client the limits share: short timeouts, no retries inside redis-py."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=_TIMEOUT,
        socket_timeout=_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


class RedisBreaker:
    """Whether Redis may be asked now: after a failure, not before the backoff, and then
    by one caller at a time (the others use their local limit meanwhile)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._backoff = 0.0
        self._retry_at = 0.0
        self._probing = False
        self.ok = True
        self.failures = 0
        self.last_error: str | None = None

    def may_try(self) -> bool:
        if self.ok:
            return True
        if self._probing or self._clock() < self._retry_at:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        if not self.ok:
            log.info("rate_limit_redis_recovered")
        self.ok = True
        self._probing = False
        self._backoff = 0.0

    def failed(self, exc: BaseException) -> None:
        if self.ok:
            log.warning("rate_limit_redis_failed", error=repr(exc))
        self.ok = False
        self._probing = False
        self.failures += 1
        self.last_error = repr(exc)
        self._backoff = min(max(self._backoff * 2, MIN_BACKOFF), MAX_BACKOFF)
        self._retry_at = self._clock() + self._backoff


class RedisRateLimiter:
    """A ``Limiter`` whose count is shared by every node on the same Redis."""

    def __init__(
        self,
        redis: Any,
        limit: int,
        period: float,
        *,
        name: str,
        scope: str,
        breaker: RedisBreaker | None = None,
    ) -> None:
        """``name``: the limit's part of the Redis key (e.g. ``app-room``); ``scope``:
        what the refusal says is counted."""
        self.limit = limit
        self.period = period
        self.scope = scope
        self._prefix = f"roomcast:limit:{name}:"
        self._period_us = round(period * 1_000_000)
        self._script = redis.register_script(_SLIDING_LOG)
        self.breaker = breaker or RedisBreaker()
        self.local = RateLimiter(limit, period, scope=scope)
        """Answers while Redis cannot: this node's own count."""
        # Members must differ even for hits in the same microsecond on two nodes.
        self._instance = uuid.uuid4().hex[:12]
        self._sequence = itertools.count()

    async def admit(self, key: str) -> None:
        if not self.breaker.may_try():
            self.local.hit(key)
            return
        try:
            admitted, wait_us = await self._script(
                keys=[self._prefix + key],
                args=[self.limit, self._period_us, f"{self._instance}:{next(self._sequence)}"],
            )
        except Exception as exc:
            self.breaker.failed(exc)
            self.local.hit(key)
            return
        self.breaker.succeeded()
        if not admitted:
            raise exceeded(self.limit, self.period, self.scope, int(wait_us) / 1_000_000)
