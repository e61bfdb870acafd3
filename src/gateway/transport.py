"""engine.io's WebSocket transport with a check on every frame the client sends.

engine.io decodes a WebSocket frame outside any error handling: a text frame that
is empty or starts with no packet type ends its receive loop with a traceback,
and an unknown packet type is ignored, leaving the connection open. Here every
frame is checked before engine.io sees it; a frame that is not an Engine.IO v4
packet ends the connection (the client's own fault, one rate-limited log line).

Installed per server as ``eio._async["websocket"]`` (pinned private part, see
docs/architecture.md; covered by tests/e2e/test_hostile_packets.py).
"""

from __future__ import annotations

from typing import Any

from engineio.async_drivers.asgi import WebSocket

from roomcast.gateway.guard import QuietLog

__all__ = ["CheckedWebSocket", "valid_frame"]

_TYPES = frozenset("123456")
"""Engine.IO v4 packet types a client may send: close, ping, pong, message, upgrade, noop."""

_log = QuietLog("socket_frame_malformed")


def valid_frame(frame: str | bytes) -> bool:
    """Whether ``frame`` decodes as an Engine.IO v4 packet (binary frames are messages)."""
    if isinstance(frame, bytes | bytearray):
        return True
    if not frame or frame[0] not in _TYPES:
        return False
    # Only a message carries data; the others carry nothing or the upgrade "probe".
    return frame[0] == "4" or frame[1:] in ("", "probe")


class CheckedWebSocket(WebSocket):  # type: ignore[misc]
    """engine.io's ASGI WebSocket, ending the connection on a frame that does not decode."""

    async def wait(self) -> Any:
        frame = await super().wait()
        if frame is None or valid_frame(frame):
            return frame
        _log.warning(reason="not an Engine.IO packet", frame=repr(frame[:40]))
        await self.close()
        return None  # engine.io reads this as "closed by the client" and cleans up
