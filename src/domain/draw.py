"""How a draw turns entropy into a winner: the one formula every verifier must share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["pick"]

T = TypeVar("T")


def pick(candidates: Sequence[T], entropy: int) -> T:
    """Return ``candidates[entropy % len(candidates)]``.

    ``candidates`` must already be in the canonical order (participant id), and
    ``entropy`` should be far wider than the candidate count (we use 256 bits),
    which makes the modulo bias negligible (< 2**-200 for any real room).
    """
    if not candidates:
        raise ValueError("no candidates to pick from")
    if entropy < 0:
        raise ValueError("entropy must be non-negative")
    return candidates[entropy % len(candidates)]
