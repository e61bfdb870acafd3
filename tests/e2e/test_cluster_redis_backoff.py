"""Redis trouble is retried at most a second apart: the Socket.IO listener of every node
(``gateway/redislink.py``) and the cluster-wide limits (``service/redis_ratelimit.py``).

The waits are read, not timed: the listener runs against a port nobody listens
on, and each of its waits is recorded from the ``asyncio.sleep`` it awaits.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from roomcast.gateway import redislink
from roomcast.gateway.redislink import MAX_BACKOFF, RedisChannel
from roomcast.service.redis_ratelimit import RedisBreaker

from ..serve_process import free_port


async def test_the_listener_retries_redis_doubling_its_wait_up_to_one_second(monkeypatch):
    channel = RedisChannel(f"redis://127.0.0.1:{free_port()}/0", "roomcast")
    waits: list[float] = []
    real_sleep = asyncio.sleep

    class Enough(Exception):
        pass

    async def recorded(delay: float, *args: Any) -> Any:
        waits.append(delay)
        if len(waits) >= 10:
            raise Enough
        return await real_sleep(0)

    monkeypatch.setattr(redislink.asyncio, "sleep", recorded)
    listener = channel.listen()
    with pytest.raises(Enough):
        async with asyncio.timeout(30):
            await anext(listener)
    await listener.aclose()
    assert waits[0] == redislink.MIN_BACKOFF
    assert all(0 < wait <= MAX_BACKOFF <= 1.0 for wait in waits), waits
    assert waits == sorted(waits)  # doubling, then capped
    assert waits[-1] == MAX_BACKOFF
    assert channel.link.listening is False
    assert channel.link.status()["ok"] is False


def test_the_limits_ask_redis_again_within_a_second_one_caller_at_a_time():
    now = [0.0]
    breaker = RedisBreaker(clock=lambda: now[0])
    waits: list[float] = []
    assert breaker.may_try()
    for _ in range(12):  # each round: the probing caller's try fails again
        breaker.failed(ConnectionError("refused"))
        started = now[0]
        while not breaker.may_try():
            now[0] += 0.01
        waits.append(round(now[0] - started, 2))
        assert not breaker.may_try()  # the one probing caller; the others count locally
    assert waits[0] == pytest.approx(0.05, abs=0.011)
    assert max(waits) <= MAX_BACKOFF + 0.011
    assert waits[-1] == pytest.approx(MAX_BACKOFF, abs=0.011)
    breaker.succeeded()
    assert breaker.ok
    assert breaker.may_try()  # answered again: everyone asks
    assert breaker.may_try()
