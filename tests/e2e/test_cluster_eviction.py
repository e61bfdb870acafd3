"""A participant removed through one node, connected to the other: the Python client
hears `room:unsubscribed` with a reason and stops following the room (no refill,
no re-subscribe), and says so to the application."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from roomcast.client import RoomcastClient, SubscriptionStatus

from ..conftest import RunningServer, redis_nodes
from .support import Recorder, create_room, join, user_id


@pytest.fixture(scope="module")
def nodes(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[RunningServer]]:
    extra = {"rest_rate_limit": 0}
    with redis_nodes(own_database_url, redis_url, tmp_path_factory, extra, extra) as running:
        yield running


async def test_a_removed_participant_on_the_other_node_stops_following(nodes):
    a, b = nodes
    org, member = user_id(), user_id()
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as http:
        room_id = await create_room(http, a, org)
        participant = await join(http, a, room_id, member)
        statuses: list[SubscriptionStatus] = []
        notices: list[dict[str, Any]] = []
        recorder = Recorder()
        told = asyncio.Event()

        def on_status(status: SubscriptionStatus) -> None:
            statuses.append(status)
            told.set()

        async with RoomcastClient(b.url, b.token(member)) as client:
            client.on("*", recorder)
            client.on("room:unsubscribed", lambda _, payload: notices.append(payload))
            client.on_status(on_status)
            await client.subscribe(room_id)
            removed = await http.delete(
                f"/api/rooms/{room_id}/participants/{participant}", headers=a.auth(org)
            )
            assert removed.status_code == 200, removed.text
            async with asyncio.timeout(30):
                await told.wait()
            [status] = statuses
            assert (status.room_id, status.state, status.code) == (
                room_id,
                "unsubscribed",
                "not_a_member",
            )
            assert notices == [{"roomId": room_id, "reason": "not_a_member"}]
            # Its own removal is the last event it gets; the room is no longer followed.
            assert [event for event, _ in recorder.events] == ["participant:left"]
            assert client.last_seq(room_id) is None
            # A later event of the room reaches neither the socket nor a refill,
            # while a subscriber on node B gets it live.
            async with RoomcastClient(b.url, b.token(org)) as witness:
                seen = Recorder()
                witness.on("*", seen)
                await witness.subscribe(room_id)
                renamed = await http.patch(
                    f"/api/rooms/{room_id}", json={"name": "after"}, headers=a.auth(org)
                )
                assert renamed.status_code == 200
                await seen.wait_for_seq(renamed.json()["data"]["version"], within=30)
            assert [event for event, _ in recorder.events] == ["participant:left"]
            assert client.gaps_refilled == 0
