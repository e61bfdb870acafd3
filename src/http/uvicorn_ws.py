"""uvicorn's sans-I/O WebSocket protocol, with a lean queue of received events.

``WebSocketsSansIOProtocol`` (what uvicorn's ``ws="auto"`` picks when the
``websockets`` package is installed) queues each connection's received events
(connect, every frame, disconnect) on an ``asyncio.Queue`` that nearly always
stands empty: ≈3 KB per open socket, idle or not. ``LeanWebSocketProtocol``
puts a ``roomcast.queues.LeanQueue`` there instead (bench P6, bench/README.md).
Passed to uvicorn as ``ws=`` (cli.uvicorn_options).

Overridden uvicorn part (pinned; tests/contract/test_uvicorn_internals.py): the
``queue`` attribute set in ``__init__``, which the protocol feeds with
``put_nowait`` and reads with ``get`` and ``empty``.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from roomcast.queues import LeanQueue

__all__ = ["LeanWebSocketProtocol"]


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Declared an asyncio.Queue upstream; only put_nowait, get and empty are used.
        self.queue = LeanQueue()  # type: ignore[assignment]
