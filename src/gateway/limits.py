"""Per-connection limits on client events: how many per minute, and how large.

Both refusals are ordinary typed errors (RATE_LIMIT_EXCEEDED, PAYLOAD_TOO_LARGE)
answered like any other: in the ack when the client asked for one, else as an
``error`` event. The socket stays open.

Size has two thresholds. python-socketio's engine.io layer only knows one,
``max_http_buffer_size``: a WebSocket message above it makes engine.io drop the
connection with no word to the client (and a polling POST above it gets HTTP
400). So engine.io is given the larger *frame* limit, and the smaller *message*
limit is checked here, where the packet's ack id is still known: a message
between the two gets PAYLOAD_TOO_LARGE; only one above the frame limit ends the
connection.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from roomcast.domain.errors import PayloadTooLarge, TooManyConnections, TooManySubscriptions
from roomcast.service.ratelimit import RateLimiter

__all__ = ["ClientLimits", "EventHeader", "attachment_count", "event_header"]

# A Socket.IO EVENT packet as text: 2[<namespace>,][<ack id>]["<event name>", ...
# Not BINARY_EVENT (5): refusing its header would leave its attachments, which
# follow as separate messages, without the packet they belong to.
# JSON allows whitespace before the array: the header must too, or a leading
# space would carry an oversized message past the check.
_HEADER = re.compile(
    r'2(?:(?P<namespace>/[^,]*),)?(?P<id>\d*)\s*\[\s*(?P<event>"(?:[^"\\]|\\.)*")?'
)
_ATTACHMENTS = re.compile(r"[56](\d{1,12})-")
_HEADER_SCAN = 512
"""How much of a message is read to find its header (the event name is cut at 100)."""


@dataclass(frozen=True, slots=True)
class EventHeader:
    namespace: str
    ack_id: int | None
    event: str


def event_header(message: str) -> EventHeader | None:
    """The namespace, ack id and event name of an event packet, without decoding its data.

    None for any other packet (connect, ack, binary event, …) or one that does not
    parse: those are left to python-socketio, bounded by the frame limit only.
    """
    match = _HEADER.match(message[:_HEADER_SCAN])
    if match is None:
        return None
    event = ""
    if match["event"] is not None:
        try:
            event = str(msgspec.json.decode(match["event"]))[:100]
        except msgspec.DecodeError:
            event = ""
    return EventHeader(
        namespace=match["namespace"] or "/",
        ack_id=int(match["id"]) if match["id"] else None,
        event=event,
    )


def attachment_count(message: str) -> int:
    """How many binary attachments a BINARY_EVENT / BINARY_ACK packet announces (0: none)."""
    match = _ATTACHMENTS.match(message)
    return int(match[1]) if match else 0


class ClientLimits:
    """Rate and size limits for the events of each connection (keyed by sid)."""

    def __init__(
        self,
        *,
        events_per_minute: int,
        max_message_bytes: int,
        max_attachments: int = 10,
        max_attachment_bytes: int = 1024 * 1024,
        max_connections_per_user: int = 16,
        max_subscriptions: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events = RateLimiter(events_per_minute, 60, scope="client events", clock=clock)
        self.max_message_bytes = max_message_bytes
        self.max_attachments = max_attachments
        """Binary attachments one packet may announce; more closes the connection."""
        self.max_attachment_bytes = max_attachment_bytes
        """Bytes all attachments of one packet may add up to; more closes the connection."""
        self.max_connections_per_user = max_connections_per_user
        self.max_subscriptions = max_subscriptions
        self._rooms: dict[str, set[str]] = {}
        """The rooms each socket is subscribed to (kept by ``joined`` / ``left``)."""

    def admit(self, sid: str) -> None:
        """Count one client event of ``sid``; RATE_LIMIT_EXCEEDED once over the limit."""
        self.events.hit(sid)

    def oversized(self, message: str) -> int | None:
        """The message's size in bytes (UTF-8) if it is over the limit, else None."""
        if len(message) <= self.max_message_bytes // 4:  # at most 4 bytes a character
            return None
        size = len(message) if message.isascii() else len(message.encode())
        return size if size > self.max_message_bytes else None

    def too_large(self, size: int, event: str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"a message may be at most {self.max_message_bytes} bytes, this one is {size}",
            {"event": event, "bytes": size, "limit": self.max_message_bytes},
        )

    def connection(self, user_id: str, open_now: int) -> None:
        """TOO_MANY_CONNECTIONS if ``user_id`` already has ``open_now`` sockets at the limit."""
        if open_now >= self.max_connections_per_user:
            raise TooManyConnections(
                f"at most {self.max_connections_per_user} connections per user on this node",
                {"limit": self.max_connections_per_user, "userId": user_id},
            )

    def joining(self, sid: str, room: str) -> None:
        """TOO_MANY_SUBSCRIPTIONS if ``sid`` is in as many rooms as allowed (not this one)."""
        rooms = self._rooms.setdefault(sid, set())
        if room not in rooms and len(rooms) >= self.max_subscriptions:
            raise TooManySubscriptions(
                f"at most {self.max_subscriptions} rooms per connection;"
                " unsubscribe from one first",
                {"limit": self.max_subscriptions},
            )
        rooms.add(room)

    def left(self, sid: str, room: str) -> None:
        rooms = self._rooms.get(sid)
        if rooms is not None:
            rooms.discard(room)

    def forget(self, sid: str) -> None:
        """Drop a closed connection's history."""
        self.events.forget(sid)
        self._rooms.pop(sid, None)
