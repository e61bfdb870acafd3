"""Fixtures of the fault scenarios: a node without a relay, and relay processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from ..e2e.test_relay_processes import RelayProcess


@pytest.fixture(scope="module")
def relayless(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A node on Redis that publishes nothing itself: the scenario's relay processes do."""
    settings = Settings(
        database_url=own_database_url,
        redis_url=redis_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("relayless-node")),
        relay=False,
        rest_rate_limit=0,
        socket_events_per_minute=10_000,
        # Every follower is the organizer: one user's 60 sockets, above the default
        # per-user limit that issue 15's tests cover on their own.
        max_connections_per_user=1_000,
    )
    with run_server(settings) as running:
        yield running


@pytest.fixture
async def relays() -> AsyncIterator[list[RelayProcess]]:
    """The scenario's relay processes (it appends them), SIGKILLed at the end."""
    started: list[RelayProcess] = []
    yield started
    for relay in started:
        await relay.kill()
