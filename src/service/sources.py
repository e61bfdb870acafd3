"""The non-determinism commands need (time, new ids), injected so tests can pin it.

Draw entropy is not here: it is derived from the room's committed seed
(``service/draws.py``, ``domain/draw.py``) so every draw can be verified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from roomcast.ids import new_id

__all__ = ["Sources"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Sources:
    now: Callable[[], datetime] = field(default=_now)
    new_id: Callable[[str], str] = field(default=new_id)
