"""uvicorn's sans-I/O WebSocket protocol, with a lean queue of received events.

``WebSocketsSansIOProtocol`` (what uvicorn's ``ws="auto"`` picks when the
``websockets`` package is installed) queues each connection's received events
(connect, every frame, disconnect) on an ``asyncio.Queue`` that nearly always
stands empty (≈3 KB per open socket, idle or not), holds an ``asyncio.Event``
for its write flow control, and keeps the handshake's request and response
(websockets' ``Request``/``Response`` with their ``Headers``) for the
connection's whole life, though nothing reads them once the handshake is
answered. ``LeanWebSocketProtocol`` puts a ``roomcast.queues.LeanQueue`` and a
``LeanEvent`` in their place and lets the handshake go once it has accepted
(bench P6, bench/README.md). Passed to uvicorn as ``ws=`` (cli.uvicorn_options).

Overridden uvicorn parts (pinned; tests/contract/test_uvicorn_internals.py): the
``queue`` and ``writable`` attributes set in ``__init__`` (the protocol uses the
queue's ``put_nowait``, ``get`` and ``empty``, the event's ``set``, ``clear``
and ``wait``); ``request`` and ``response``, read only by ``handle_connect`` and
by ``send`` until it has sent the accept.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from roomcast.queues import LeanEvent, LeanQueue

__all__ = ["LeanWebSocketProtocol"]


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Declared an asyncio.Queue upstream; only put_nowait, get and empty are used.
        self.queue = LeanQueue()  # type: ignore[assignment]
        self.writable = LeanEvent()  # type: ignore[assignment]
        self.writable.set()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Nothing reads them past the accept (the contract test checks where).
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
