"""SSE across nodes: a stream on a node without the relay follows the room through Redis.

A module of its own: its nodes need a database whose relay lock no other node holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ..conftest import RunningServer, redis_nodes
from .sse_client import open_stream
from .support import create_room, rename_many, user_id
from .test_sse import log_of, received


@pytest.fixture(scope="module")
def nodes(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    with redis_nodes(
        own_database_url, redis_url, tmp_path_factory, {"rest_rate_limit": 0}, {"relay": False}
    ) as (a, b):
        yield a, b


async def test_a_stream_on_another_node_gets_the_same_events(nodes):
    node_a, node_b = nodes
    org = user_id()
    async with (
        httpx.AsyncClient(base_url=node_a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=node_b.url, timeout=30) as on_b,
    ):
        room_id = await create_room(on_a, node_a, org)
        url = f"/api/rooms/{room_id}/stream"
        async with (
            open_stream(on_b, url, params={"lastEventId": 0}, headers=node_b.auth(org)) as far,
            open_stream(on_a, url, params={"lastEventId": 0}, headers=node_a.auth(org)) as near,
        ):
            await rename_many(on_a, node_a, org, room_id, 20, concurrency=4)
            await far.wait_for_seq(21)
            await near.wait_for_seq(21)
        log = await log_of(on_a, node_a, org, room_id)
    assert received(far) == log
    assert received(near) == log
