"""Live room events as this node delivers them, for listeners that are not Socket.IO sockets.

Every room event a node delivers (published by its own relay, or by another
node's through Redis) passes once through the gateway's ``RoomDelivery.deliver``
in seq order. It hands each one to the listeners registered here for that
stream, synchronously, before any socket gets it. The SSE edge
(``http/sse.py``) listens here, so a stream works on every node through the
same relay and Redis channel as the sockets, with no second subscription.

A listener is called on the event loop and must not block or await: it
queues the event and returns (the SSE stream's queue is bounded, and a full
one cuts that stream off, not the delivery).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Listener", "LiveFeed"]

Listener = Callable[[str, Any, int], None]
"""``(event, payload, seq)``: the payload is what the sockets get (``msgspec.Raw``
from the local relay, a decoded dict from Redis)."""


class LiveFeed:
    """Listeners per broadcast room (``room:{streamId}``), called for each room event."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def listeners(self, room: str) -> int:
        """How many listeners ``room`` has now."""
        return len(self._listeners.get(room, ()))

    def listen(self, room: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every event of ``room`` from now on; returns the way to stop."""
        self._listeners.setdefault(room, []).append(listener)

        def stop() -> None:
            found = self._listeners.get(room)
            if found is None:
                return
            try:
                found.remove(listener)
            except ValueError:
                return
            if not found:
                del self._listeners[room]

        return stop

    def deliver(self, room: str, event: str, payload: Any, seq: int) -> None:
        found = self._listeners.get(room)
        if found:
            for listener in tuple(found):  # a listener may stop itself
                listener(event, payload, seq)
