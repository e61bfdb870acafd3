"""When PostgreSQL goes away under a running server: typed 503s, never a 500 or a hang."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from roomcast.config import Settings
from roomcast.outbox.embedded import EmbeddedPostgres, EmbeddedPostgresError

from ..conftest import JWT_SECRET, RunningServer, run_server, unavailable


@pytest.fixture(scope="module")
def doomed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, EmbeddedPostgres]]:
    """A server on a PostgreSQL of its own, which the test stops."""
    postgres = EmbeddedPostgres(tmp_path_factory.mktemp("doomed-pg"))
    try:
        dsn = postgres.start()
    except EmbeddedPostgresError as exc:
        unavailable(f"cannot start an embedded PostgreSQL: {exc}")
    settings = Settings(
        database_url=dsn,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("doomed-data")),
        relay=False,
    )
    try:
        with run_server(settings) as running:
            yield running, postgres
    finally:
        postgres.stop()


async def test_commands_reads_and_health_answer_503_when_the_database_is_gone(doomed):
    server, postgres = doomed
    org = "usr_doomed"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        created = await http.post("/api/rooms", json={"name": "x"}, headers=server.auth(org))
        assert created.status_code == 201
        room_id = created.json()["data"]["room"]["id"]

        postgres.stop()

        for response in (
            await http.patch(f"/api/rooms/{room_id}", json={"name": "y"}, headers=server.auth(org)),
            await http.get(f"/api/rooms/{room_id}/events", headers=server.auth(org)),
            await http.post("/api/rooms", json={"name": "z"}, headers=server.auth(org)),
        ):
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["success"] is False
            assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert response.headers["Retry-After"] == str(body["error"]["details"]["retryAfter"])
            assert body["error"]["details"].get("written") is not True
        health = await http.get("/health")
        assert health.status_code == 503
        assert health.headers["Retry-After"] == "1"
        assert health.json()["checks"]["database"]["ok"] is False
