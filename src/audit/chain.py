"""The hash chain, recomputed from stored rows: pure, in seq order, a page at a time.

For each row: ``seq`` must be the next of 1, 2, 3, …; ``prev_hash`` must be the
previous row's hash (the zero hash for seq 1); ``hash`` must be
``sha256(prev_hash || canonical_bytes(row))``. At the end the stream head
(``streams.version`` and ``last_hash``) must name the last row.

``Chain.extend`` is the verifier's hot loop (bench P7): it builds each row's
canonical bytes by splicing pre-encoded pieces instead of encoding a sorted
dict per row (``codec.canonical_bytes``, which the server hashes with), and
caches the JSON of the values that repeat (actor ids, event types). msgspec
writes strings as ``json.dumps(ensure_ascii=False)`` does and a UTC datetime as
docs/audit.md's ``recordedAt``; a property test holds the two paths to the same
hashes (tests/unit/test_draw_replay.py).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from roomcast.outbox.codec import ZERO_HASH

__all__ = ["Chain", "Row"]

_encode = msgspec.json.Encoder().encode


class Row(NamedTuple):
    """One ``events`` row, in the column order of ``roomcast audit log``'s reads."""

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
        self._stream = _encode(stream_id)
        self._json: dict[str | None, bytes] = {None: b"null"}
        """JSON of the actor ids and types seen: a room has few of each."""

    def add(self, row: Row) -> str | None:
        """``None`` if ``row`` extends the chain, else why it does not."""
        page_row = (row.seq, str(row.event_id).encode(), row.type, row.data.encode(), *row[4:])
        broken = self.extend((page_row,))
        return None if broken is None else broken[1]

    def extend(self, rows: Iterable[Sequence[Any]]) -> tuple[int, str] | None:
        """Check ``rows`` (each in ``source.PAGE_COLUMNS``'s order) one after the other.

        That is ``Row``'s order, with ``event_id`` and ``data`` as UTF-8 bytes
        (read so, they are neither decoded nor encoded again). ``None`` if they
        all extend the chain, else the index of the first that does not and
        why; the chain then ends at the row before it.
        """
        count = self.count
        last = self.last_hash
        stream = self._stream
        known = self._json
        sha256 = hashlib.sha256
        utc = UTC
        i = -1
        for seq, event_id, type_, data, actor_id, at, prev_hash, stored in rows:
            i += 1
            if seq != count + 1:
                self.count, self.last_hash = count, last
                what = "missing" if seq > count + 1 else "duplicated or out of order"
                return i, f"seq {seq} follows seq {count}: seq {count + 1} is {what}"
            if prev_hash != last:
                self.count, self.last_hash = count, last
                return i, "prev_hash is not the hash of the previous event"
            actor = known.get(actor_id)
            if actor is None:
                actor = known[actor_id] = _encode(actor_id)
            type_json = known.get(type_)
            if type_json is None:
                type_json = known[type_] = _encode(type_)
            if at.tzinfo is not utc:
                if at.utcoffset() is None:
                    raise ValueError("recorded_at must be timezone-aware")
                at = at.astimezone(utc)
            digest = sha256(
                b"".join(
                    (
                        last,
                        b'{"actorId":',
                        actor,
                        b',"data":',
                        data,
                        b',"eventId":"',
                        event_id,
                        b'","recordedAt":',
                        _encode(at),
                        b',"seq":',
                        str(seq).encode(),
                        b',"streamId":',
                        stream,
                        b',"type":',
                        type_json,
                        b"}",
                    )
                )
            ).digest()
            if digest != stored:
                self.count, self.last_hash = count, last
                return i, (
                    "hash mismatch: the stored event is not the one that was hashed "
                    f"(stored {bytes(stored).hex()[:16]}…, recomputed {digest.hex()[:16]}…)"
                )
            count = seq
            last = digest
        self.count, self.last_hash = count, last
        return None

    def check_head(self, version: int, last_hash: bytes) -> str | None:
        """The stream row must point at the last event: ``None`` if it does."""
        if version != self.count:
            return f"streams.version is {version} but the log ends at seq {self.count}"
        if bytes(last_hash) != self.last_hash:
            return "streams.last_hash is not the hash of the last event"
        return None
