"""The collector settings `serve` and `relay` apply to their own process."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from roomcast import gctune


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def test_tune_sets_the_first_threshold_and_keeps_the_others(restored: None) -> None:
    _, second, third = gc.get_threshold()
    gctune.tune(50_000)
    assert gc.get_threshold() == (50_000, second, third)


def test_zero_keeps_what_the_interpreter_has(restored: None) -> None:
    before = gc.get_threshold()
    gctune.tune(0)
    assert gc.get_threshold() == before


def test_freeze_moves_what_is_alive_out_of_collections(restored: None) -> None:
    alive = [object() for _ in range(10)] + [[] for _ in range(10)]
    gctune.freeze_startup()
    assert gc.get_freeze_count() > len(alive)
