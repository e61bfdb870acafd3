"""PostgreSQL stopped for 5 s, then its postmaster SIGKILLed, with clients reconnecting
*during* the outage: every subscription heals, nothing is lost, duplicated or reordered.

The server runs on an embedded PostgreSQL of its own (never the machine's). While it
is down, each client's transport is cut, so it reconnects (the socket needs no
database) and re-subscribes into SERVICE_UNAVAILABLE: ``RoomcastClient`` must retry
with backoff and report it (``on_status``), then catch up once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from roomcast.client import RoomcastClient, SubscriptionStatus
from roomcast.config import Settings
from roomcast.outbox.embedded import EmbeddedPostgres, EmbeddedPostgresError

from ..conftest import JWT_SECRET, RunningServer, run_server, unavailable
from ..e2e.support import create_room, user_id
from .history import History

OUTAGE_SECONDS = 5.0
CLIENTS = 6


@pytest.fixture(scope="module")
def outage(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, EmbeddedPostgres, str]]:
    postgres = EmbeddedPostgres(tmp_path_factory.mktemp("outage-pg"))
    try:
        dsn = postgres.start()
    except EmbeddedPostgresError as exc:
        unavailable(f"cannot start an embedded PostgreSQL: {exc}")
    settings = Settings(
        database_url=dsn,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("outage-data")),
        rest_rate_limit=0,
        relay_poll_seconds=0.05,
    )
    try:
        with run_server(settings) as running:
            yield running, postgres, dsn
    finally:
        postgres.stop()


async def _write(http: httpx.AsyncClient, server: RunningServer, org: str, room: str, n: int):
    """``n`` renames, each retried on 503 until it is answered 200 (``written: false``
    makes that safe): the writers of a real deployment would do the same."""
    for i in range(n):
        while True:
            response = await http.patch(
                f"/api/rooms/{room}", json={"name": f"n{i}-{time.monotonic()}"},
                headers=server.auth(org),
            )  # fmt: skip
            if response.status_code == 200:
                break
            assert response.status_code == 503, response.text
            assert response.json()["error"]["details"].get("written") is not True
            await asyncio.sleep(float(response.headers["Retry-After"]) / 10)


async def _head(dsn: str, room: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT version FROM streams WHERE stream_id = $1", room))
    finally:
        await conn.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[RoomcastClient]]:
    opened: list[RoomcastClient] = []
    yield opened
    for client in opened:
        await client.close()


@pytest.mark.parametrize("how", ["stop", "sigkill"])
async def test_clients_reconnecting_during_an_outage_heal_and_lose_nothing(
    outage, clients, how: str
):
    server, postgres, dsn = outage
    org = user_id()
    history = History()
    statuses: dict[int, list[SubscriptionStatus]] = {i: [] for i in range(CLIENTS)}
    changed = asyncio.Event()

    def on_status(i: int):
        def record(status: SubscriptionStatus) -> None:
            statuses[i].append(status)
            changed.set()

        return record

    async def until(every: str, within: float) -> None:
        async with asyncio.timeout(within):
            while not all(any(s.state == every for s in mine) for mine in statuses.values()):
                changed.clear()
                await changed.wait()

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        room = await create_room(http, server, org)
        for i in range(CLIENTS):
            client = RoomcastClient(
                server.url, server.token(org), batch=i % 2 == 0, retry_initial=0.2, retry_max=1.0
            )
            record = history.client(f"py{i}", org)
            record.start[room] = 0
            client.on("*", history.recorder(record))
            client.on_status(on_status(i))
            await client.connect()
            await client.subscribe(room, last_seq=0)
            clients.append(client)
        await _write(http, server, org, room, 10)
        await history.wait_for({room: 11})

        went_down = time.monotonic()
        if how == "stop":
            await asyncio.to_thread(postgres.stop)
        else:
            pid = int((Path(postgres.pgdata) / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        for client in clients:  # cut every transport: they reconnect into the outage
            await client.sio.eio.ws.close()
        await until("retrying", within=30)  # each re-subscribe was refused, and said so
        refused = {s.code for mine in statuses.values() for s in mine}
        assert refused == {"SERVICE_UNAVAILABLE"}, refused
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - went_down)))  # the fault
        if how == "sigkill":
            await asyncio.to_thread(postgres.stop)  # release the dead server's holder
        back = time.monotonic()
        await asyncio.to_thread(postgres.start)
        await until("subscribed", within=60)
        healed = time.monotonic() - back
        await _write(http, server, org, room, 10)
        head = await _head(dsn, room)
        await history.wait_for({room: head})
        conn = await asyncpg.connect(dsn)
        try:
            report = await history.check(conn)
        finally:
            await conn.close()
    print(f"postgres {how} {OUTAGE_SECONDS:g}s: {report.row()} healed_in={healed:.2f}s")
    assert report.clean, report.problems
    assert not [s for mine in statuses.values() for s in mine if s.state == "failed"]
