"""How a draw turns the room's secret seed into a winner: the formulas every verifier shares.

A room commits to a 32-byte secret seed when it becomes active (``commitment``
goes into ``room:status_changed``), every draw derives its entropy from that
seed and its draw number (``entropy``), and closing the room reveals the seed.
docs/audit.md states these byte for byte for independent verifiers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeGuard, TypeVar

__all__ = ["SEED_BYTES", "SeedMismatch", "commitment", "entropy", "pick", "seed_matches"]

T = TypeVar("T")

SEED_BYTES = 32
"""A room's secret seed is exactly this long."""


class SeedMismatch(Exception):
    """The seed the server brought does not fit the room's commitment.

    Not a refusal of the caller's request (``Rejected``) but a broken server
    invariant: the secret kept for the room is missing or not the committed one.
    """


def commitment(seed: bytes) -> str:
    """``sha256(seed)`` as 64 lowercase hex digits: what ``room:status_changed`` records."""
    return hashlib.sha256(seed).hexdigest()


def seed_matches(seed: bytes | None, committed: str) -> TypeGuard[bytes]:
    """True when ``seed`` is a seed and ``commitment(seed) == committed``."""
    return seed is not None and len(seed) == SEED_BYTES and commitment(seed) == committed


def entropy(seed: bytes, draw_number: int) -> int:
    """``sha256(seed || draw_number as 8-byte big-endian)`` read as a big-endian integer."""
    if draw_number < 1:
        raise ValueError("draw numbers start at 1")
    digest = hashlib.sha256(seed + draw_number.to_bytes(8, "big")).digest()
    return int.from_bytes(digest, "big")


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
