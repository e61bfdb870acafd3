"""The one rate limiter: a sliding window per key, refusals say when to retry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.domain.errors import RateLimitExceeded
from roomcast.service.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_eleventh_hit_in_a_second_is_refused_with_retry_after():
    clock = Clock()
    limiter = RateLimiter(10, 1.0, scope="events", clock=clock)
    for _ in range(10):
        limiter.hit("room_1")
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.hit("room_1")
    assert refused.value.details["retryAfter"] == 1
    assert refused.value.details["limit"] == 10
    limiter.hit("room_2")  # other keys are not affected


def test_the_window_slides():
    clock = Clock()
    limiter = RateLimiter(2, 60.0, scope="events", clock=clock)
    limiter.hit("k")
    clock.now += 30
    limiter.hit("k")
    clock.now += 29
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.hit("k")
    assert refused.value.details["retryAfter"] == 1  # the first hit leaves the window in 1 s
    clock.now += 1
    limiter.hit("k")  # the first hit has left the window


def test_a_refused_hit_is_not_counted():
    clock = Clock()
    limiter = RateLimiter(1, 1.0, scope="events", clock=clock)
    limiter.hit("k")
    for _ in range(5):
        with pytest.raises(RateLimitExceeded):
            limiter.hit("k")
    clock.now += 1.0
    limiter.hit("k")


def test_idle_keys_are_forgotten_when_the_table_is_full():
    clock = Clock()
    limiter = RateLimiter(1, 1.0, scope="events", clock=clock, max_keys=3)
    for key in "abc":
        limiter.hit(key)
    clock.now += 2
    limiter.hit("d")
    assert len(limiter) == 1


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=200))
def test_never_more_than_limit_hits_in_any_window(gaps: list[float]):
    clock = Clock()
    limiter = RateLimiter(5, 1.0, scope="events", clock=clock)
    accepted: list[float] = []
    for gap in gaps:
        clock.now += gap
        try:
            limiter.hit("k")
        except RateLimitExceeded:
            continue
        accepted.append(clock.now)
    for i, start in enumerate(accepted):
        assert sum(1 for t in accepted[i:] if t < start + 1.0) <= 5
