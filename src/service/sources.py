"""The non-determinism commands need (time, new ids, entropy), injected so tests can pin it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from roomcast.ids import new_id

__all__ = ["Sources"]


def _now() -> datetime:
    return datetime.now(UTC)


def _entropy() -> int:
    return secrets.randbits(256)


@dataclass(frozen=True, slots=True)
class Sources:
    now: Callable[[], datetime] = field(default=_now)
    new_id: Callable[[str], str] = field(default=new_id)
    entropy: Callable[[], int] = field(default=_entropy)
