"""Identifier factories: time-ordered UUIDv7 event ids and seed-003-style prefixed ids."""

from __future__ import annotations

import os
import secrets
import time
import uuid

__all__ = ["new_id", "uuid7"]


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A UUID version 7 (RFC 9562): 48-bit millisecond timestamp, then 74 random bits.

    Time-ordered, so the event table's unique index stays append-friendly.
    """
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b (62 bits)
    return uuid.UUID(int=value)


def new_id(prefix: str) -> str:
    """``room_3f9c0a1b2c4d5e6f``: 64 random bits, hex, behind the entity's prefix."""
    return f"{prefix}_{secrets.token_hex(8)}"
