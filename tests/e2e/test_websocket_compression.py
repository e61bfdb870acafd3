"""WebSocket permessage-deflate: not negotiated unless ROOMCAST_WS_COMPRESSION is on.

Browsers and the ``websockets`` client offer the extension on every upgrade;
whether it is used is the server's answer in ``Sec-WebSocket-Extensions``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from websockets.asyncio.client import connect

from ..conftest import RunningServer, run_server


def _socket_url(server: RunningServer) -> str:
    return server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"


async def _negotiated(server: RunningServer) -> str | None:
    async with connect(_socket_url(server), compression="deflate") as ws:
        opened = await ws.recv()  # engine.io's open packet: the session is real
        assert isinstance(opened, str)
        assert opened.startswith("0{")
        assert ws.response is not None
        return ws.response.headers.get("Sec-WebSocket-Extensions")


@pytest.fixture(scope="module")
def compressing(
    server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    settings = msgspec.structs.replace(
        server.settings,
        ws_compression=True,
        relay=False,
        data_dir=Path(tmp_path_factory.mktemp("deflate-data")),
    )
    with run_server(settings) as running:
        yield running


async def test_compression_is_off_by_default(server: RunningServer) -> None:
    assert server.settings.ws_compression is False
    assert await _negotiated(server) is None


async def test_compression_is_negotiated_when_switched_on(compressing: RunningServer) -> None:
    extensions = await _negotiated(compressing)
    assert extensions is not None
    assert extensions.startswith("permessage-deflate")
