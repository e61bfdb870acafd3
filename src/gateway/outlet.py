"""Sending a run of room events to one socket: one frame per run, or one message per event.

Used for what a subscribe sends to its own socket (the replay, then what was
held at the gate). It writes onto the socket's queue directly: with Redis a
reply to a local socket has no reason to travel through the pub/sub channel.
"""

from __future__ import annotations

from typing import Any

from roomcast.gateway.delivery import BATCH_EVENT, LocalDelivery, seq_of

__all__ = ["Outlet"]


class Outlet:
    """One socket's replay sink; ``batch`` selects ``room:events`` frames."""

    def __init__(self, delivery: LocalDelivery, sid: str, *, batch: bool, namespace: str = "/"):
        self._delivery = delivery
        self._sid = sid
        self._batch = batch
        self._namespace = namespace
        self.last_seq = 0
        """The highest seq sent (the floor for live duplicates afterwards)."""

    def send(self, events: list[tuple[str, Any]]) -> None:
        """Queue ``events`` (name, payload) in order. Synchronous: nothing can interleave."""
        if not events:
            return
        self.last_seq = max(self.last_seq, seq_of(events[-1][1]))
        delivery = self._delivery
        eio_sid = delivery.eio_sid_from_sid(self._sid, self._namespace)
        if eio_sid is None:  # the socket is gone; its next subscribe replays again
            return
        namespace = self._namespace
        if self._batch:
            payloads = [payload for _, payload in events]
            delivery.put(eio_sid, [delivery.event_packet(namespace, BATCH_EVENT, payloads)])
            return
        delivery.put(eio_sid, [delivery.event_packet(namespace, e, p) for e, p in events])
