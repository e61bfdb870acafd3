"""Event ⇄ row encoding, the canonical bytes of the hash chain, and the wire payload.

Encoders and decoders are built once. The stored ``data`` is the exact JSON
msgspec produced for the domain event; the hash, the wire payload and the
audit tools all start from those bytes, never from a re-encoding.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import msgspec

from roomcast.domain.apps import RESERVED_NAMESPACES
from roomcast.domain.events import Event
from roomcast.domain.events import decode_event as _decode_event

__all__ = [
    "ZERO_HASH",
    "Envelope",
    "canonical_bytes",
    "chain_hash",
    "decode_event",
    "encode_event",
    "envelope",
    "wire_payload",
]

ZERO_HASH = bytes(32)
"""``prev_hash`` of a stream's first event."""

_encoder = msgspec.json.Encoder()
_DATA_KEY = b',"data":{'
_sorted_encoder = msgspec.json.Encoder(order="sorted")


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One event as every edge shows it: the Socket.IO event name and its payload.

    ``payload`` is already-encoded JSON (seed 003's payload plus ``eventId`` and
    ``seq``), so relaying and replaying never re-encode it.
    """

    event: str
    payload: msgspec.Raw


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: str | bytes) -> Event:
    return _decode_event(data)


def canonical_bytes(
    *,
    stream_id: str,
    seq: int,
    event_id: uuid.UUID | str,
    type_: str,
    data: bytes,
    actor_id: str | None,
    recorded_at: datetime,
) -> bytes:
    """The bytes an event's hash covers: one JSON object, keys sorted, no spaces.

    ``data`` is embedded verbatim (it is already JSON); see docs/audit.md.
    ``recordedAt`` is rendered in UTC (``…Z``, microseconds only when non-zero),
    exactly as the ``timestamptz`` read back from PostgreSQL renders, so a
    verifier recomputes the same bytes from the stored row.
    """
    if recorded_at.utcoffset() is None:
        raise ValueError("recorded_at must be timezone-aware")
    return _sorted_encoder.encode(
        {
            "actorId": actor_id,
            "data": msgspec.Raw(data),
            "eventId": str(event_id),
            "recordedAt": recorded_at.astimezone(UTC),
            "seq": seq,
            "streamId": stream_id,
            "type": type_,
        }
    )


def chain_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    """``sha256(prev_hash || canonical)``."""
    return hashlib.sha256(prev_hash + canonical).digest()


def wire_payload(event_id: uuid.UUID | str, seq: int, data: bytes, type_: str = "") -> bytes:
    """The broadcast payload: the stored event object with ``eventId`` and ``seq`` first.

    Spliced, not re-encoded: ``data`` is a JSON object (``{…}``) that already
    holds ``roomId``, ``timestamp`` and ``type`` (the event name). An app's
    event (``type_`` outside the platform's namespaces) is sent flat: the app's
    object beside our fields instead of under ``data`` (seed 003), exactly as
    ``sql._WIRE_PAYLOAD`` splices it.
    """
    head = b'{"eventId":"%s","seq":%d,' % (str(event_id).encode(), seq)
    if not type_ or type_.split(":", 1)[0] in RESERVED_NAMESPACES:
        return head + data[1:]
    cut = data.index(_DATA_KEY)
    inner = data[cut + len(_DATA_KEY) : -1]  # the app's object without its `{`, with its `}`
    return head + data[1:cut] + (b"}" if inner == b"}" else b"," + inner)


def envelope(type_: str, event_id: uuid.UUID | str, seq: int, data: bytes) -> Envelope:
    return Envelope(event=type_, payload=msgspec.Raw(wire_payload(event_id, seq, data, type_)))
