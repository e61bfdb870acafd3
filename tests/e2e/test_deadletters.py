"""Dead letters as an operator sees them: /health, /metrics, and `roomcast deadletter`
(a separate process) to list, retry and drop them, next to a running node."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .support import create_room, user_id
from .test_operations import scrape, value


@pytest.fixture(scope="module")
def node(
    own_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=own_database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("deadletter-node")),
        relay_poll_seconds=0.05,
    )
    with run_server(settings) as running:
        yield running


@pytest.fixture
async def http(node: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as client:
        yield client


async def deadletter(node: RunningServer, *args: str) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roomcast", "deadletter", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": str(node.settings.database_url)},
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def test_a_dead_letter_is_shown_listed_retried_and_gone(node, http, own_database_url):
    org = user_id()
    room_id = await create_room(http, node, org)
    conn = await asyncpg.connect(own_database_url)
    try:
        # As the reactor leaves a reaction that failed every attempt.
        global_id = await conn.fetchval(
            "SELECT global_id FROM events WHERE stream_id = $1 AND seq = 1", room_id
        )
        await conn.execute(
            "INSERT INTO dead_letters (global_id, stream_id, attempts, last_error)"
            " VALUES ($1, $2, 5, 'RuntimeError(boom)')",
            global_id,
            room_id,
        )
    finally:
        await conn.close()

    health = await http.get("/health")
    assert health.status_code == 200  # an operator's job, not a reason to leave the pool
    body = health.json()
    assert body["status"] == "degraded"
    assert body["reactions"] == {"queued": 0, "deadLetters": 1}
    assert body["checks"]["reactions"]["ok"] is False
    assert value(await scrape(http), "roomcast_dead_letters") == 1

    code, out, err = await deadletter(node, "list")
    assert code == 0, err
    [listed] = [json.loads(line) for line in out.splitlines()]
    assert listed["globalId"] == global_id
    assert (listed["streamId"], listed["seq"], listed["event"]) == (room_id, 1, "room:created")
    assert (listed["attempts"], listed["lastError"]) == (5, "RuntimeError(boom)")

    code, out, err = await deadletter(node, "retry", str(global_id), "123456789")
    assert code == 1  # one of them is not a dead letter
    assert "1 dead letter(s) queued again" in out
    assert "not dead letters: 123456789" in err
    # The node's reactor runs it (room:created needs nothing): the queue empties.
    async with asyncio.timeout(30):
        while (await http.get("/health")).json()["reactions"] != {"queued": 0, "deadLetters": 0}:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # a table over HTTP: nothing to await

    code, _, err = await deadletter(node, "drop")
    assert code == 2
    assert "needs ids or --all" in err
    code, out, _ = await deadletter(node, "drop", "--all")
    assert (code, out.strip()) == (0, "roomcast: 0 dead letter(s) dropped")
