"""Relays as separate processes publishing through Redis: killed mid-batch, taken over.

The server runs with its own relay switched off; `roomcast relay` processes
(real subprocesses, real SIGKILL) publish through Redis into its gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from roomcast.client import RoomcastClient
from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .support import Recorder, create_room, rename_many, user_id

SINGLE = {"ROOMCAST_RELAY_PARTITIONS": "1"}


@pytest.fixture(scope="module")
def redis_server(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=own_database_url,
        redis_url=redis_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("redis-node")),
        relay=False,
    )
    with run_server(settings) as running:
        yield running


class RelayProcess:
    """``roomcast relay`` in a subprocess; knows from its log when it became active,
    which partitions it holds, and (at ``debug``) how many rows it published."""

    def __init__(self, own_database_url: str, redis_url: str, **env: str) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": own_database_url,
            "REDIS_URL": redis_url,
            "ROOMCAST_LOG_FORMAT": "json",
            "ROOMCAST_RELAY_POLL": "0.05",
            **env,
        }
        self.process: asyncio.subprocess.Process | None = None
        self.active = asyncio.Event()
        self.partitions: frozenset[int] = frozenset()
        self.published = 0
        """Rows its batches published (counted from ``relay_batch_published``, debug)."""
        self.changed = asyncio.Event()
        """Set at every change of ``partitions`` (the waiter clears it)."""
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> RelayProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "roomcast", "relay",
            env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            if b'"relay_active"' in line:
                self.active.set()
            if b'"relay_batch_published"' in line:
                self.published += json.loads(line)["rows"]
            elif b'"relay_partitions"' in line or b'"relay_active"' in line:
                record = json.loads(line)
                self.partitions = frozenset(record.get("held", record.get("partitions", ())))
                self.changed.set()

    async def kill(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@pytest.fixture
async def relays(own_database_url: str, redis_url: str) -> AsyncIterator[list[RelayProcess]]:
    started: list[RelayProcess] = []
    yield started
    for relay in started:
        await relay.kill()


async def start_relay(
    relays: list[RelayProcess], own_database_url: str, redis_url: str, **env: str
) -> RelayProcess:
    relay = await RelayProcess(own_database_url, redis_url, **env).start()
    relays.append(relay)
    return relay


async def subscribed_clients(server: RunningServer, org: str, room_id: str, count: int):
    """``count`` clients, alternately with ``room:events`` frames and without."""
    pairs = []
    for i in range(count):
        client = RoomcastClient(server.url, server.token(org), batch=i % 2 == 0)
        recorder = Recorder()
        client.on("*", recorder)
        await client.connect()
        await client.subscribe(room_id, last_seq=0)
        pairs.append((client, recorder))
    return pairs


async def test_relays_killed_mid_batch_lose_nothing(
    redis_server, relays, own_database_url, redis_url
):
    """SIGKILL the publishing relay again and again while 300 commands run: every client
    ends with seq 1..301, each once, in order (duplicates dropped by the client)."""
    org = user_id()
    async with httpx.AsyncClient(base_url=redis_server.url, timeout=30) as http:
        room_id = await create_room(http, redis_server, org)
        clients = await subscribed_clients(redis_server, org, room_id, 3)
        writing = asyncio.create_task(rename_many(http, redis_server, org, room_id, 300, 4))
        kills = 0
        try:
            while not writing.done() or kills < 3:
                relay = await start_relay(relays, own_database_url, redis_url)
                async with asyncio.timeout(30):
                    await relay.active.wait()
                # Let it publish a little, then kill it wherever it is.
                await asyncio.wait({writing}, timeout=0.3)
                await relay.kill()
                kills += 1
            await writing
            final = await start_relay(relays, own_database_url, redis_url)
            async with asyncio.timeout(30):
                await final.active.wait()
            for _, recorder in clients:
                await recorder.wait_for_seq(301)
        finally:
            for client, _ in clients:
                await client.close()
    assert kills >= 3
    for _, recorder in clients:
        assert recorder.seqs == list(range(1, 302))


async def test_two_relays_one_publishes_and_the_other_takes_over(
    redis_server, relays, own_database_url, redis_url
):
    org = user_id()
    async with httpx.AsyncClient(base_url=redis_server.url, timeout=30) as http:
        room_id = await create_room(http, redis_server, org)
        [(client, recorder)] = await subscribed_clients(redis_server, org, room_id, 1)  # batch
        try:
            # One partition: the single publisher of ADR 0004, the other stands by
            # (partitions shared between relays: test_relay_partitions.py).
            first = await start_relay(relays, own_database_url, redis_url, **SINGLE)
            async with asyncio.timeout(30):
                await first.active.wait()
            second = await start_relay(relays, own_database_url, redis_url, **SINGLE)
            await rename_many(http, redis_server, org, room_id, 10, 1)
            await recorder.wait_for_seq(11)
            assert not second.active.is_set()  # it waits on the publisher lock

            await first.kill()
            async with asyncio.timeout(30):
                await second.active.wait()
            await rename_many(http, redis_server, org, room_id, 10, 1)
            await recorder.wait_for_seq(21)
        finally:
            await client.close()
    assert recorder.seqs == list(range(1, 22))
