"""Sending a run of room events to one socket: one frame per run, or one message per event.

Used for what a subscribe sends to its own socket (the replay, then what was
held at the gate). It writes onto the socket's queue directly: with Redis a
reply to a local socket has no reason to travel through the pub/sub channel.
"""

from __future__ import annotations

from typing import Any

import msgspec
from engineio import packet as eio_packet

from roomcast.gateway.delivery import BATCH_EVENT, RoomDelivery, payload_of, seq_of

__all__ = ["Outlet", "mark_replayed"]


def mark_replayed(payload: Any) -> Any:
    """The payload with ``replayed: true`` (a replay or a recovery sent it, not the live
    stream): clients dropping "stale" events by ``timestamp`` must not drop these."""
    if isinstance(payload, msgspec.Raw):
        return msgspec.Raw(b'{"replayed":true,' + bytes(payload)[1:])
    if isinstance(payload, dict):
        return {**payload, "replayed": True}
    return payload


class Outlet:
    """One socket's replay sink; ``batch`` selects ``room:events`` frames."""

    def __init__(
        self,
        delivery: RoomDelivery,
        sid: str,
        *,
        batch: bool,
        namespace: str = "/",
        offsets: tuple[str, str] | None = None,
    ):
        self._offsets = None if batch else offsets
        """(base, roomId): replayed events carry ``base|roomId:seq`` (gateway/recovery.py)."""
        self._delivery = delivery
        self._sid = sid
        self._batch = batch
        self._namespace = namespace
        self.last_seq = 0
        """The highest seq sent (the floor for live duplicates afterwards)."""
        self.count = 0
        """How many events were sent."""

    def send(self, events: list[tuple[str, Any]], *, replayed: bool = False) -> None:
        """Queue ``events`` (name, payload) in order. Synchronous: nothing can interleave.

        ``replayed``: they come from the log, not the live stream (``replayed: true``)."""
        if not events:
            return
        if replayed:
            events = [(e, mark_replayed(p)) for e, p in events]
        self.last_seq = max(self.last_seq, seq_of(events[-1][1]))
        offsets = self._offsets if replayed else None
        self.count += len(events)
        delivery = self._delivery
        eio_sid = delivery.sockets.eio_sid_from_sid(self._sid, self._namespace)
        if eio_sid is None:  # the socket is gone; its next subscribe replays again
            return
        namespace = self._namespace
        if self._batch:
            payloads = [payload_of(payload) for _, payload in events]
            delivery.put(eio_sid, [delivery.event_packet(namespace, BATCH_EVENT, payloads)])
            return
        if offsets is not None:
            base, room_id = offsets
            delivery.put(
                eio_sid,
                [
                    delivery.event_packet(namespace, e, p, f"{base}|{room_id}:{seq_of(p)}")
                    for e, p in events
                ],
            )
            return
        delivery.put(eio_sid, [delivery.event_packet(namespace, e, p) for e, p in events])

    def send_frame(self, count: int, last_seq: int, body: str) -> None:
        """Queue one ``room:events`` frame of ``count`` replayed events whose array
        (``body``, its payloads already marked replayed) ends at ``last_seq``.

        Batch outlets only: a frame carries no offsets (docs/decisions/0009).
        """
        if not count:
            return
        self.last_seq = max(self.last_seq, last_seq)
        self.count += count
        delivery = self._delivery
        eio_sid = delivery.sockets.eio_sid_from_sid(self._sid, self._namespace)
        if eio_sid is None:  # the socket is gone; its next subscribe replays again
            return
        delivery.put(eio_sid, [_frame_packet(self._namespace, body)])


_FRAME_START = msgspec.json.encode([BATCH_EVENT]).decode()[:-1] + ","
"""``["room:events",``: a frame's Socket.IO event array up to its payloads."""


def _frame_packet(namespace: str, body: str) -> eio_packet.Packet:
    """``RoomDelivery.event_packet(namespace, BATCH_EVENT, <body>)``, written around
    the array text as it is: a page's text is not re-encoded, or copied more than once."""
    head = "2" if namespace == "/" else f"2{namespace},"
    return eio_packet.Packet(eio_packet.MESSAGE, f"{head}{_FRAME_START}{body}]")
