"""A decider (Chassaing): the pure functions that make a kind of stream work.

``decide(command, state) -> events`` and ``evolve(state, event) -> state``, plus
how the stream's events and state snapshots are decoded and which version of the
state a snapshot holds. The store and the
command service are written against this, so a room and a user's inbox are
stored, numbered, chained, cached and retried by the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Decider"]

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Decider(Generic[C, E, S]):
    name: str
    decide: Callable[[C, S], list[E]]
    evolve: Callable[[S, E], S]
    decode_event: Callable[[bytes | str], E]
    state_type: Any
    """What a snapshot decodes to (a msgspec type); the initial state is None."""
    state_version: int
    """The version of the state a snapshot encodes: the shape of ``state_type`` and what
    ``evolve`` puts in it. Bump it when either changes; the store then ignores older
    snapshots and rebuilds the state from the events (tests/unit/test_state_version.py
    catches a shape change without a bump)."""
