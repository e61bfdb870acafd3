"""No ambiguous outcome: a command whose connection is lost at commit answers what happened.

The server reaches PostgreSQL through a proxy (tests/faults/proxy.py) that
cuts one connection right at the append. Whether PostgreSQL ran it or not,
the answer must be true: the command's own 200/201 when it committed, a 503
with ``written: false`` (and ``Retry-After``) when nothing was written, never
a 500, never a 503 for a command that is in the log. And with
``pg_terminate_backend`` on running appends, the same.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from ..e2e.support import create_room, user_id
from .proxy import CutProxy


@pytest.fixture(scope="module")
def proxy(own_database_url: str) -> Iterator[tuple[CutProxy, str]]:
    proxy = CutProxy(own_database_url)
    dsn = proxy.start()
    yield proxy, dsn
    proxy.close()


@pytest.fixture(scope="module")
def proxied(
    proxy: tuple[CutProxy, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=proxy[1],
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("proxied")),
        relay=False,
        rest_rate_limit=0,
    )
    with run_server(settings) as running:
        yield running


@pytest.fixture
async def log(own_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(own_database_url)
    yield conn
    await conn.close()


async def names_in_log(log: asyncpg.Connection, room_id: str) -> list[str]:
    rows = await log.fetch(
        "SELECT data->'changes'->>'name' FROM events WHERE stream_id = $1 AND type = 'room:updated'"
        " ORDER BY seq",
        room_id,
    )
    return [r[0] for r in rows]


async def test_an_append_cut_after_it_was_sent_answers_its_real_success(proxied, proxy, log):
    cut, _ = proxy
    org = user_id()
    async with httpx.AsyncClient(base_url=proxied.url, timeout=60) as http:
        room_id = await create_room(http, proxied, org)
        for _ in range(10):
            name = f"cut-after-{uuid.uuid4().hex[:8]}"
            done = cut.arm(name, "after")
            response = await http.patch(
                f"/api/rooms/{room_id}", json={"name": name}, headers=proxied.auth(org)
            )
            assert done.is_set()  # the cut did happen on this command
            assert response.status_code == 200, response.text
            assert [e["event"] for e in response.json()["data"]["events"]] == ["room:updated"]
            assert (await names_in_log(log, room_id)).count(name) == 1


async def test_an_append_that_never_reached_postgresql_is_a_certain_503(proxied, proxy, log):
    cut, _ = proxy
    org = user_id()
    async with httpx.AsyncClient(base_url=proxied.url, timeout=60) as http:
        room_id = await create_room(http, proxied, org)
        for mode in ("drop", "late"):
            name = f"cut-{mode}-{uuid.uuid4().hex[:8]}"
            done = cut.arm(name, mode)
            response = await http.patch(
                f"/api/rooms/{room_id}", json={"name": name}, headers=proxied.auth(org)
            )
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "SERVICE_UNAVAILABLE"
            assert error["details"]["written"] is False
            assert response.headers["Retry-After"] == str(error["details"]["retryAfter"])
            # "late": the statement reached PostgreSQL after the answer; the backend
            # that would have run it was ended first, so it never commits.
            assert await asyncio.to_thread(done.wait, 30)
            assert name not in await names_in_log(log, room_id)
        again = await http.patch(
            f"/api/rooms/{room_id}", json={"name": "after the cuts"}, headers=proxied.auth(org)
        )
        assert again.status_code == 200, again.text


async def test_a_cut_racing_the_statement_is_answered_truly_either_way(proxied, proxy, log):
    cut, _ = proxy
    org = user_id()
    outcomes = []
    async with httpx.AsyncClient(base_url=proxied.url, timeout=60) as http:
        room_id = await create_room(http, proxied, org)
        for _ in range(10):
            name = f"cut-now-{uuid.uuid4().hex[:8]}"
            done = cut.arm(name, "now")
            response = await http.patch(
                f"/api/rooms/{room_id}", json={"name": name}, headers=proxied.auth(org)
            )
            assert await asyncio.to_thread(done.wait, 30)
            logged = name in await names_in_log(log, room_id)
            if response.status_code == 200:
                assert logged
            else:
                assert response.status_code == 503, response.text
                assert response.json()["error"]["details"]["written"] is False
                assert not logged
            outcomes.append(response.status_code)
    assert len(outcomes) == 10


async def test_a_prize_cut_at_commit_is_created_once_and_answered_201(proxied, proxy, log):
    """The issue's duplicate: a 503 for a committed prize made the client retry it."""
    cut, _ = proxy
    org = user_id()
    async with httpx.AsyncClient(base_url=proxied.url, timeout=60) as http:
        room_id = await create_room(http, proxied, org)
        for _ in range(5):
            name = f"prize-{uuid.uuid4().hex[:8]}"
            cut.arm(name, "after")
            response = await http.post(
                f"/api/rooms/{room_id}/prizes",
                json={"name": name, "quantity": 1},
                headers=proxied.auth(org),
            )
            assert response.status_code == 201, response.text
            created = await log.fetchval(
                "SELECT count(*) FROM events WHERE stream_id = $1 AND type = 'prize:created'"
                " AND data->'prize'->>'name' = $2",
                room_id,
                name,
            )
            assert created == 1


@pytest.fixture(scope="module")
def direct(
    own_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=own_database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("direct")),
        relay=False,
        rest_rate_limit=0,
    )
    with run_server(settings) as running:
        yield running


async def test_backends_terminated_under_running_appends_never_answer_500(direct, log):
    """``pg_terminate_backend`` on every active backend of the app, every few ms, under
    eight writers: each answer is a 200 whose name is in the log or a 503 whose name
    is not (``written: false`` for a write in doubt), never a 500."""
    org = user_id()
    answers: list[tuple[int, str, dict[str, object]]] = []
    database = await log.fetchval("SELECT current_database()")
    async with httpx.AsyncClient(base_url=direct.url, timeout=60) as http:
        rooms = [await create_room(http, direct, org) for _ in range(8)]
        stop = asyncio.Event()

        async def writer(room_id: str) -> None:
            for i in range(40):
                name = f"t-{i}-{uuid.uuid4().hex[:6]}"
                response = await http.patch(
                    f"/api/rooms/{room_id}", json={"name": name}, headers=direct.auth(org)
                )
                body = response.json()
                details = body.get("error", {}).get("details", {})
                if response.status_code == 503:
                    assert "Retry-After" in response.headers
                answers.append((response.status_code, f"{room_id}/{name}", details))

        async def terminator() -> int:
            ended = 0
            while not stop.is_set():
                ended += await log.fetchval(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'active'"
                    " AND query LIKE '%INSERT INTO events%'",
                    database,
                )
                await asyncio.sleep(0.005)  # the fault's cadence
            return ended

        killing = asyncio.create_task(terminator())
        try:
            await asyncio.gather(*(writer(room_id) for room_id in rooms))
        finally:
            stop.set()
        ended = await killing
    logged = {
        f"{row[0]}/{row[1]}"
        for row in await log.fetch(
            "SELECT stream_id, data->'changes'->>'name' FROM events WHERE stream_id = ANY($1)"
            " AND type = 'room:updated'",
            rooms,
        )
    }
    statuses = {status for status, _, _ in answers}
    assert statuses <= {200, 503}, statuses
    for status, key, details in answers:
        if status == 200:
            assert key in logged
        else:
            assert key not in logged, f"answered 503 but committed: {key}"
            assert details.get("written") is not True
            assert details.get("written") != "unknown"
    assert ended > 0  # the fault did hit running appends
