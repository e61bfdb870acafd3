"""A decider (Chassaing): the pure functions that make a kind of stream work.

``decide(command, state) -> events`` and ``evolve(state, event) -> state``, plus
how the stream's events and state snapshots are decoded. The store and the
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
