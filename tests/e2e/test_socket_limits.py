"""Per-user and per-socket limits, each refused with its own code, on a node with small limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .rawsocket import RawSocket
from .support import create_room, user_id


@pytest.fixture(scope="module")
def node(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("socket-limits")),
        rest_rate_limit=0,
        max_connections_per_user=2,
        max_subscriptions_per_socket=2,
    )
    with run_server(settings) as running:
        yield running


async def test_a_users_third_connection_is_refused_and_others_are_not(node):
    sub = user_id()
    first = await RawSocket.connected(node, node.token(sub))
    second = await RawSocket.connected(node, node.token(sub))
    third = await RawSocket.open(node)
    await third.send("40" + json.dumps({"token": node.token(sub)}))
    refused = json.loads((await third.next_matching(lambda f: f.startswith("44")))[2:])
    assert refused["data"]["code"] == "TOO_MANY_CONNECTIONS"
    assert isinstance(refused["message"], str)
    other = await RawSocket.connected(node, node.token(user_id()))  # another user: fine
    # One closed: the user may connect again.
    await first.close()
    await second.send('421["presence:get_online",{"roomId":"room_nope"}]')
    await second.ack(1)
    async with asyncio.timeout(10):
        while True:
            again = await RawSocket.open(node)
            await again.send("40" + json.dumps({"token": node.token(sub)}))
            answer = await again.next_matching(lambda f: f.startswith(("40", "44")))
            if answer.startswith("40{"):
                break
            await again.close()  # the server has not seen the close yet: try again
    for raw in (second, third, other, again):
        await raw.close()


async def test_a_socket_in_as_many_rooms_as_allowed_cannot_subscribe_to_another(node):
    org = user_id()
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        rooms = [await create_room(http, node, org) for _ in range(3)]
    raw = await RawSocket.connected(node, node.token(org))
    for ack_id, room_id in enumerate(rooms[:2], start=1):
        await raw.send(f'42{ack_id}["room:subscribe",{{"roomId":"{room_id}"}}]')
        answer = await raw.ack(ack_id)
        assert answer["success"] is True, answer
    # Subscribing again to one of them does not count twice.
    await raw.send(f'423["room:subscribe",{{"roomId":"{rooms[0]}"}}]')
    assert (await raw.ack(3))["success"] is True
    await raw.send(f'424["room:subscribe",{{"roomId":"{rooms[2]}"}}]')
    refused = await raw.ack(4)
    assert refused["error"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    assert refused["error"]["details"]["limit"] == 2
    # After an unsubscribe there is room for it.
    await raw.send(f'425["room:unsubscribe",{{"roomId":"{rooms[1]}"}}]')
    assert (await raw.ack(5))["success"] is True
    await raw.send(f'426["room:subscribe",{{"roomId":"{rooms[2]}"}}]')
    assert (await raw.ack(6))["success"] is True
    await raw.close()
