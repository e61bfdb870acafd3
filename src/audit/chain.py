"""The hash chain, recomputed from stored rows: pure, one row at a time, in seq order.

For each row: ``seq`` must be the next of 1, 2, 3, …; ``prev_hash`` must be the
previous row's hash (the zero hash for seq 1); ``hash`` must be
``sha256(prev_hash || canonical_bytes(row))``. At the end the stream head
(``streams.version`` and ``last_hash``) must name the last row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple

from roomcast.outbox.codec import ZERO_HASH, canonical_bytes, chain_hash

__all__ = ["Chain", "Row"]


class Row(NamedTuple):
    """One ``events`` row, in the column order of ``source.ROWS``."""

    seq: int
    event_id: uuid.UUID
    type: str
    data: str
    actor_id: str | None
    recorded_at: datetime
    prev_hash: bytes
    hash: bytes


class Chain:
    """Feed it a stream's rows in seq order; it names the first one that breaks the chain."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.count = 0
        self.last_hash = ZERO_HASH

    def add(self, row: Row) -> str | None:
        """``None`` if ``row`` extends the chain, else why it does not."""
        expected = self.count + 1
        if row.seq != expected:
            what = "missing" if row.seq > expected else "duplicated or out of order"
            return f"seq {row.seq} follows seq {self.count}: seq {expected} is {what}"
        if bytes(row.prev_hash) != self.last_hash:
            return "prev_hash is not the hash of the previous event"
        canonical = canonical_bytes(
            stream_id=self.stream_id,
            seq=row.seq,
            event_id=row.event_id,
            type_=row.type,
            data=row.data.encode(),
            actor_id=row.actor_id,
            recorded_at=row.recorded_at,
        )
        digest = chain_hash(self.last_hash, canonical)
        if digest != bytes(row.hash):
            return (
                "hash mismatch: the stored event is not the one that was hashed "
                f"(stored {bytes(row.hash).hex()[:16]}…, recomputed {digest.hex()[:16]}…)"
            )
        self.count = row.seq
        self.last_hash = digest
        return None

    def check_head(self, version: int, last_hash: bytes) -> str | None:
        """The stream row must point at the last event: ``None`` if it does."""
        if version != self.count:
            return f"streams.version is {version} but the log ends at seq {self.count}"
        if bytes(last_hash) != self.last_hash:
            return "streams.last_hash is not the hash of the last event"
        return None
