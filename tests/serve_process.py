"""``roomcast serve`` as a real child process, which a test can SIGKILL and start again
on the same port (the SDK and browser tests: a crash is a crash, not a shutdown)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from roomcast.tokens import mint

from .conftest import JWT_SECRET

__all__ = ["ServeProcess", "free_port", "serving"]

_START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    """One ``roomcast serve`` on ``port``; ``kill()`` is SIGKILL, ``start()`` again reuses
    the port, the database and the data directory."""

    def __init__(self, database_url: str, data_dir: Path, port: int | None = None, **env: str):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log = data_dir / "serve.log"
        self._env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "ROOMCAST_JWT_SECRET": JWT_SECRET,
            "ROOMCAST_DATA_DIR": str(data_dir),
            "ROOMCAST_REST_RATE_LIMIT": "0",
            "ROOMCAST_LOG_LEVEL": "warning",
            **env,
        }
        self._env.pop("REDIS_URL", None)
        self.process: subprocess.Popen[bytes] | None = None

    def token(
        self, sub: str, name: str | None = None, ttl: int = 3600, roles: list[str] | None = None
    ) -> str:
        return mint(
            secret=JWT_SECRET,
            sub=sub,
            name=name,
            issuer="roomcast",
            audience="roomcast",
            ttl_seconds=ttl,
            extra={"roles": roles} if roles else None,
        )

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "roomcast", "serve", "--port", str(self.port)],
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"roomcast serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)  # polling a child's readiness: there is no event to await
        raise RuntimeError(f"roomcast serve did not answer /health: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to the sockets."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def serving(database_url: str, data_dir: Path, **env: str) -> Iterator[ServeProcess]:
    server = ServeProcess(database_url, data_dir, **env)
    server.start()
    try:
        yield server
    finally:
        server.stop()
