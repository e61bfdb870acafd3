"""Cluster-wide limits: two nodes on one Redis count the same REST and app-event limits.

The per-user REST limit and the per-room app-event limit are kept in Redis
(``service/redis_ratelimit.py``): a client that spreads its requests over both
nodes gets no more than one node would give it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from ..conftest import RunningServer, redis_nodes
from .support import create_room, user_id

REST_LIMIT = 30
"""Requests per user per minute on these nodes: a minute is far longer than the test."""


@pytest.fixture(scope="module")
def nodes(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[RunningServer]]:
    extra = {"rest_rate_limit": REST_LIMIT}
    with redis_nodes(own_database_url, redis_url, tmp_path_factory, extra, extra) as running:
        yield running


@pytest.fixture
async def clients(nodes: list[RunningServer]) -> AsyncIterator[list[httpx.AsyncClient]]:
    a, b = (httpx.AsyncClient(base_url=node.url, timeout=30) for node in nodes)
    async with a, b:
        yield [a, b]


async def test_a_users_rest_limit_holds_across_both_nodes(nodes, clients):
    user = user_id()
    headers = nodes[0].auth(user)
    answers = [
        await http.get("/api/rooms", headers=headers)
        for http in itertools.islice(itertools.cycle(clients), REST_LIMIT)
    ]
    assert [r.status_code for r in answers] == [200] * REST_LIMIT
    # Each node has served half of the limit: a per-node count would still admit.
    for http in clients:
        refused = await http.get("/api/rooms", headers=headers)
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert error["code"] == "RATE_LIMIT_EXCEEDED"
        assert error["details"]["limit"] == REST_LIMIT
        assert int(refused.headers["Retry-After"]) >= 1
    # The count is per user: someone else is served by both nodes.
    other = nodes[0].auth(user_id())
    for http in clients:
        assert (await http.get("/api/rooms", headers=other)).status_code == 200
        health = (await http.get("/health")).json()
        assert health["node"]["redis"]["limits"] == {"ok": True, "failures": 0}


async def test_a_rooms_app_event_limit_holds_across_both_nodes(nodes, clients):
    org = user_id()
    room_id = await create_room(clients[0], nodes[0], org)
    app = nodes[0].app_auth("lottery")
    body = {"event": "lottery:tick", "data": {}}

    async def post(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post(f"/api/rooms/{room_id}/events", json=body, headers=app)

    # Ten to each node at once: within one second a per-node limit (10 per second
    # per room) admits all twenty; the shared one admits ten of them.
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = await asyncio.gather(*(post(http) for http in clients for _ in range(10)))
    took = loop.time() - started
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {201, 429}, [r.text for r in answers if r.status_code not in (201, 429)]
    admitted = codes.count(201)
    if took < 1.0:
        assert admitted == 10, codes
    else:  # a slow machine: still never more than 10 in any second
        assert 10 <= admitted <= 10 * (int(took) + 1), (codes, took)
    refused = [r for r in answers if r.status_code == 429]
    assert refused, "twenty app events in a second and none refused"
    for response in refused:
        details = response.json()["error"]["details"]
        assert details["scope"] == "app events per room"


async def test_without_redis_each_node_keeps_the_limit_on_its_own():
    from roomcast.domain.errors import RateLimitExceeded
    from roomcast.service.redis_ratelimit import RedisRateLimiter, limits_client

    from ..serve_process import free_port

    redis = limits_client(f"redis://127.0.0.1:{free_port()}/0")  # nobody listens there
    limiter = RedisRateLimiter(redis, 2, 60, name="test", scope="requests")
    try:
        await limiter.admit("u")  # Redis refused the connection: counted here instead
        assert not limiter.breaker.ok
        await limiter.admit("u")
        with pytest.raises(RateLimitExceeded) as refused:
            await limiter.admit("u")
        assert refused.value.details["limit"] == 2
        assert limiter.breaker.failures >= 1
    finally:
        await redis.aclose()
