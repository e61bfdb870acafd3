"""A subscribe that fails never costs the socket the subscription it already had.

Issue 16: a refused re-subscribe used to drop the existing subscription, two
subscribes on one socket discarded each other's held events, and a subscribe
during a database outage answered SERVICE_UNAVAILABLE with nothing to say when
to retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from roomcast.config import Settings
from roomcast.outbox.embedded import EmbeddedPostgres, EmbeddedPostgresError

from ..conftest import JWT_SECRET, RunningServer, run_server, unavailable
from .support import create_room, rename_many, subscribe, user_id


@pytest.fixture
def raw(server: RunningServer, raw_sockets: Any) -> Any:
    return lambda sub: raw_sockets(server, sub)


async def test_a_refused_resubscribe_keeps_the_existing_subscription(server, http, raw):
    org = user_id()
    room_id = await create_room(http, server, org)
    client, wire = await raw(org)
    await subscribe(client, {"roomId": room_id})
    refused = await client.call("room:subscribe", {"roomId": room_id, "lastSeq": 99}, timeout=30)
    assert refused["success"] is False
    assert refused["error"]["code"] == "INVALID_PAYLOAD"
    await rename_many(http, server, org, room_id, 3)
    await wire.wait_for_seq(4)
    assert wire.seqs == [2, 3, 4]


async def test_subscribes_on_one_socket_are_serialised_and_lose_nothing(server, http, raw):
    org = user_id()
    room_id = await create_room(http, server, org)
    await rename_many(http, server, org, room_id, 20)  # head 21
    client, wire = await raw(org)
    writes = asyncio.create_task(rename_many(http, server, org, room_id, 30, concurrency=2))
    acks = await asyncio.gather(
        *(
            client.call("room:subscribe", {"roomId": room_id, "lastSeq": last}, timeout=30)
            for last in (0, 10, 15)
        )
    )
    await writes
    assert all(ack["success"] for ack in acks), acks
    await wire.wait_for_seq(51)
    # Every seq arrived; the later subscribes replayed their ranges again (the
    # client asked for them), nothing was skipped or discarded.
    assert set(wire.seqs) == set(range(1, 52))
    assert sorted(set(wire.seqs)) == list(range(1, 52))


@pytest.fixture
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    """A server (with its relay) on a PostgreSQL of its own, which the test stops."""
    pg_dir = tmp_path_factory.mktemp("outage-pg")
    postgres = EmbeddedPostgres(pg_dir)
    try:
        dsn = postgres.start()
    except EmbeddedPostgresError as exc:
        unavailable(f"cannot start an embedded PostgreSQL: {exc}")
    settings = Settings(
        database_url=dsn,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("outage-data")),
    )
    holder = {"pg": postgres}
    try:
        with run_server(settings) as running:
            yield running, pg_dir, holder  # type: ignore[misc]
    finally:
        holder["pg"].stop()


async def test_a_subscribe_during_an_outage_is_refused_with_retry_after_and_keeps_the_old_one(
    outage, raw_sockets
):
    server, pg_dir, holder = outage
    org = user_id()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        room_id = await create_room(http, server, org)
        other_room = await create_room(http, server, org)
        client, wire = await raw_sockets(server, org)
        await subscribe(client, {"roomId": room_id})

        holder["pg"].stop()
        for payload in ({"roomId": room_id, "lastSeq": 0}, {"roomId": other_room}):
            refused = await client.call("room:subscribe", payload, timeout=30)
            assert refused["success"] is False, refused
            assert refused["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert refused["error"]["details"]["retryAfter"] >= 1

        holder["pg"] = EmbeddedPostgres(pg_dir)
        holder["pg"].start()
        async with asyncio.timeout(60):
            while True:  # the pool reconnects on its own; retry as a client would
                response = await http.patch(
                    f"/api/rooms/{room_id}", json={"name": "back"}, headers=server.auth(org)
                )
                if response.status_code == 200:
                    break
                assert response.status_code == 503, response.text
                await asyncio.sleep(0.5)  # a client's back-off between retries
        # The subscription that existed before the outage still delivers.
        await wire.wait_for_seq(2)
        assert wire.seqs in ([2], [1, 2])  # room:created may have been relayed after the subscribe
