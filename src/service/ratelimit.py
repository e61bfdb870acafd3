"""Keyed rate limits: at most ``limit`` hits per ``period`` seconds for each key.

One limiter serves every limit in the product (app events per room, client
events per connection, REST requests per user), so they all refuse the same
way: ``RateLimitExceeded`` with ``details['retryAfter']`` in whole seconds,
which REST turns into a ``Retry-After`` header.

A sliding log, not a token bucket: "10 events per second" then means what it
says for any one-second window, which is what an app author reading the
protocol expects. The log of a key holds at most ``limit`` timestamps.

The clock is passed in (``time.monotonic`` by default) so tests can pin it.
``RateLimiter`` keeps its log in this process. Limits that hold for the whole
cluster (an app's events per room, a user's REST requests) are ``Limiter``s:
``RateLimiter`` in memory without Redis, ``RedisRateLimiter``
(``service/redis_ratelimit.py``) with it; both refuse alike.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from roomcast.domain.errors import RateLimitExceeded

__all__ = ["Limiter", "RateLimiter", "exceeded"]


class Limiter(Protocol):
    """A keyed limit awaited where the count may live outside this process."""

    limit: int
    period: float
    scope: str

    async def admit(self, key: str) -> None:
        """Count one hit for ``key``, or raise ``RateLimitExceeded`` without counting it."""
        ...


def exceeded(limit: int, period: float, scope: str, retry_after: float) -> RateLimitExceeded:
    """The one refusal of every limit, wherever its count is kept."""
    return RateLimitExceeded(
        f"at most {limit} {scope} per {_period(period)}",
        {
            "limit": limit,
            "periodSeconds": period,
            "scope": scope,
            "retryAfter": max(1, math.ceil(retry_after)),
        },
    )


class RateLimiter:
    def __init__(
        self,
        limit: int,
        period: float,
        *,
        scope: str,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a rate limit needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self.scope = scope
        self._clock = clock
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> None:
        """Count one hit for ``key``, or raise ``RateLimitExceeded`` without counting it."""
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._forget_idle(now)
            hits = self._hits[key] = deque(maxlen=self.limit)
        while hits and hits[0] <= now - self.period:
            hits.popleft()
        if len(hits) >= self.limit:
            raise exceeded(self.limit, self.period, self.scope, hits[0] + self.period - now)
        hits.append(now)

    async def admit(self, key: str) -> None:
        """``hit`` as a ``Limiter``: the count is this process's."""
        self.hit(key)

    def forget(self, key: str) -> None:
        """Drop a key's history (its connection closed, say)."""
        self._hits.pop(key, None)

    def __len__(self) -> int:
        return len(self._hits)

    def _forget_idle(self, now: float) -> None:
        # Bounded memory under many keys: drop those with no hit in the window.
        horizon = now - self.period
        idle = [key for key, hits in self._hits.items() if not hits or hits[-1] <= horizon]
        for key in idle:
            del self._hits[key]


def _period(seconds: float) -> str:
    if seconds == 1:
        return "second"
    if seconds == 60:
        return "minute"
    return f"{seconds:g} seconds"
