"""Operator surfaces end to end: /metrics, /health, admin stats, REST limits.

Real uvicorn, real PostgreSQL, real Socket.IO clients. Counters are read as
deltas between two scrapes: tests run one at a time, so nothing else moves them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from roomcast.client import RoomcastClient
from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .support import bearer, token, user_id


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def create_room(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await http.post("/api/rooms", json={"name": "Ops"}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["room"]["id"])


class TestMetrics:
    async def test_commands_appends_broadcasts_and_replays_are_counted(self, server, http):
        org, stranger = user_id(), user_id()
        before = await scrape(http)

        room_id = await create_room(http, server.auth(org))
        refused = await http.patch(
            f"/api/rooms/{room_id}", json={"name": "x"}, headers=server.auth(stranger)
        )
        assert refused.status_code == 403
        second = asyncio.Event()

        def seen(_event: str, payload: dict[str, Any]) -> None:
            if payload.get("seq") == 2:
                second.set()

        async with RoomcastClient(server.url, server.token(org)) as client:
            client.on("*", seen)
            ack = await client.subscribe(room_id, last_seq=0)  # replays room:created
            assert ack["headSeq"] == 1
            renamed = await http.patch(
                f"/api/rooms/{room_id}", json={"name": "y"}, headers=server.auth(org)
            )
            assert renamed.status_code == 200
            async with asyncio.timeout(30):
                await second.wait()

        # The relay counts a batch once its rows are deleted, which may be after the
        # sockets have it: the metric has no event of its own to await, so look again.
        async with asyncio.timeout(10):
            while True:
                after = await scrape(http)
                delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
                if value(delta, "roomcast_relay_published_total") >= 2:
                    break
                await asyncio.sleep(0.05)
        created = ("roomcast_commands_total", (("command", "create_room"), ("outcome", "applied")))
        assert delta[created] == 1
        assert (
            value(delta, "roomcast_commands_total", command="update_room", outcome="applied") == 1
        )
        assert (
            value(
                delta, "roomcast_commands_total", command="update_room", outcome="PERMISSION_DENIED"
            )
            == 1
        )
        assert value(delta, "roomcast_events_appended_total") == 2
        # The rename went through group commit (the create is written alone).
        assert value(delta, "roomcast_append_batch_size_count") >= 1
        assert value(after, "roomcast_append_batch_size_bucket", le="128.0") == value(
            after, "roomcast_append_batch_size_count"
        )
        assert value(delta, "roomcast_replays_total", kind="subscribe") == 1
        # room:created, from this node's memory if the relay had published it, else read.
        sources = ("memory", "database")
        assert sum(value(delta, "roomcast_replayed_events_total", source=s) for s in sources) == 1
        assert value(delta, "roomcast_broadcasts_total") >= 2  # the two events, at least
        assert value(delta, "roomcast_relay_published_total") >= 2
        assert value(after, "roomcast_relay_enabled") == 1
        assert value(after, "roomcast_database_up") == 1
        assert ("roomcast_outbox_depth", ()) in after
        assert value(after, "roomcast_relay_lag_seconds") >= 0

    async def test_sockets_and_subscriptions_are_gauges_of_the_moment(self, server, http):
        org = user_id()
        room_id = await create_room(http, server.auth(org))
        async with (
            RoomcastClient(server.url, server.token(org)) as one,
            RoomcastClient(server.url, server.token(org)) as two,
        ):
            await one.subscribe(room_id)
            await two.subscribe(room_id)
            busy = await scrape(http)
        # Other tests' sockets may still be closing on the server: lower bounds only.
        assert value(busy, "roomcast_socket_connections") >= 2
        assert value(busy, "roomcast_socket_users") >= 1
        assert value(busy, "roomcast_subscriptions") >= 2
        assert value(busy, "roomcast_rooms") >= 1

    async def test_metrics_and_health_need_no_token(self, http):
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.get("/health")).status_code == 200


class TestHealth:
    async def test_health_reports_database_relay_lag_sockets_and_the_backlog(self, http):
        body = (await http.get("/health")).json()
        assert body["checks"]["database"]["ok"] is True
        assert isinstance(body["node"]["id"], str)
        assert body["node"]["relay"]["lagSeconds"] >= 0
        assert body["node"]["sockets"]["connected"] >= 0
        assert body["outbox"]["depth"] >= 0
        assert body["outbox"]["oldestSeconds"] >= 0

    async def test_health_and_metrics_show_the_partitions_this_nodes_relay_holds(self, http):
        """The session's node is its database's only relay: it holds every partition
        (docs/decisions/0022-relay-partitions.md). Another module's relay on the same
        database may have held some until just now: look until they land here."""
        async with asyncio.timeout(30):
            while True:
                relay = (await http.get("/health")).json()["node"]["relay"]
                if relay["partitions"] == list(range(relay["partitionCount"])):
                    break
        assert relay["partitionCount"] == 16  # ROOMCAST_RELAY_PARTITIONS' default
        assert relay["active"] is True
        assert relay["liveRelays"] == 1
        assert relay["mismatchedRelays"] == 0
        samples = await scrape(http)
        name = "roomcast_relay_partition_held"
        held = [value(samples, name, partition=str(k)) for k in range(16)]
        assert held == [1.0] * 16
        assert ("roomcast_relay_partition_held", (("partition", "16"),)) not in samples
        assert value(samples, "roomcast_relay_live_relays") == 1


class TestAdminStats:
    async def test_an_admin_sees_connections_rooms_and_subscribers_per_room(self, server, http):
        org = user_id()
        room_id = await create_room(http, server.auth(org))
        admin = bearer(token(server, user_id(), roles=["admin"]))
        async with (
            RoomcastClient(server.url, server.token(org)) as one,
            RoomcastClient(server.url, server.token(org)) as two,
        ):
            await one.subscribe(room_id)
            await two.subscribe(room_id)
            response = await http.get("/api/admin/stats", headers=admin)
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            assert data["subscribers"][room_id] == 2
            assert data["connections"] >= 2
            assert data["users"] >= 1
            assert data["rooms"] == len(data["subscribers"])
            assert isinstance(data["nodeId"], str)
        # The server handles the disconnects on its own time: wait for them to land.
        async with asyncio.timeout(30):
            while True:
                after = (await http.get("/api/admin/stats", headers=admin)).json()["data"]
                if room_id not in after["subscribers"]:
                    break

    @pytest.mark.parametrize("roles", [None, [], ["organizer"], "admin"])
    async def test_anyone_else_gets_permission_denied(self, server, http, roles):
        extra = {} if roles is None else {"roles": roles}
        response = await http.get(
            "/api/admin/stats", headers=bearer(token(server, user_id(), **extra))
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "PERMISSION_DENIED"

    async def test_without_a_token_it_is_authentication_failed(self, http):
        response = await http.get("/api/admin/stats")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "AUTHENTICATION_FAILED"


# A node of its own: no relay (the outbox fills and stays), a low REST limit.
@pytest.fixture(scope="module")
def quiet(own_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    settings = Settings(
        database_url=own_database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("quiet-data")),
        relay=False,
        rest_rate_limit=5,
        max_body_bytes=1024,
        node_id="quiet-node",
    )
    with run_server(settings) as running:
        yield running


@pytest.fixture
async def quiet_http(quiet: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=quiet.url, timeout=30) as client:
        yield client


class TestWithoutARelay:
    async def test_outbox_depth_counts_what_no_relay_published(self, quiet, quiet_http):
        before = await scrape(quiet_http)
        await create_room(quiet_http, quiet.auth(user_id()))
        await create_room(quiet_http, quiet.auth(user_id()))
        after = await scrape(quiet_http)
        assert value(after, "roomcast_outbox_depth") == value(before, "roomcast_outbox_depth") + 2
        assert value(after, "roomcast_outbox_oldest_seconds") > 0
        assert value(after, "roomcast_relay_enabled") == 0
        assert not [k for k in after if k[0] == "roomcast_relay_partition_held"]
        health = (await quiet_http.get("/health")).json()
        assert health["outbox"]["depth"] == value(after, "roomcast_outbox_depth")
        assert health["node"]["id"] == "quiet-node"


class TestRestLimits:
    async def test_the_sixth_request_in_a_minute_is_429_with_retry_after(self, quiet, quiet_http):
        alice, bob = quiet.auth(user_id()), quiet.auth(user_id())
        for _ in range(5):
            assert (await quiet_http.get("/api/rooms/room_nope", headers=alice)).status_code == 404
        refused = await quiet_http.get("/api/rooms/room_nope", headers=alice)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"]["details"]["limit"] == 5
        # Per user: bob is not slowed down by alice.
        assert (await quiet_http.get("/api/rooms/room_nope", headers=bob)).status_code == 404
        # Unauthenticated operator endpoints are not counted against anyone.
        assert (await quiet_http.get("/health")).status_code == 200

    async def test_an_oversized_body_is_413_payload_too_large_never_a_500(self, quiet, quiet_http):
        headers = {**quiet.auth(user_id()), "content-type": "application/json"}
        big = b'{"name": "' + b"x" * 4096 + b'"}'
        response = await quiet_http.post("/api/rooms", content=big, headers=headers)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    async def test_a_route_reading_its_raw_body_is_limited_too(self, quiet, quiet_http):
        headers = {**quiet.auth(user_id()), "content-type": "application/json"}
        big = b'{"jti": "' + b"x" * 4096 + b'"}'
        response = await quiet_http.post("/api/auth/revoke", content=big, headers=headers)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    async def test_a_chunked_body_without_length_is_cut_at_the_limit(self, quiet, quiet_http):
        headers = {**quiet.auth(user_id()), "content-type": "application/json"}

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"name": "'
            for _ in range(8):
                yield b"x" * 512
            yield b'"}'

        response = await quiet_http.post("/api/rooms", content=chunks(), headers=headers)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
