"""Processes the harness starts: the app, the bare baseline server, client workers.

Every child is registered here and stopped on the way out (``Processes.close``,
from ``finally``; an ``atexit`` hook kills whatever is left). Children also get
``PR_SET_PDEATHSIG``, so a harness killed with SIGKILL takes them with it, and
their own session, so a Ctrl-C reaches only the harness, which then stops them
in order. Client workers also exit when their stdin closes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from bench.httpc import Http, HttpError

__all__ = ["ROOT", "Processes", "Server", "Worker", "WorkerError", "Workers", "free_port"]

ROOT = Path(__file__).resolve().parent.parent
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[asyncio.subprocess.Process] = []
        self._logs: list[IO[bytes]] = []
        atexit.register(self._kill_all)

    async def spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        pipes: bool = False,
    ) -> asyncio.subprocess.Process:
        log = (self.log_dir / f"{name}.log").open("ab")  # closed in close()
        self._logs.append(log)
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipes else log,
            stderr=log,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            limit=1 << 26,
        )
        self._procs.append(proc)
        return proc

    async def stop(self, proc: asyncio.subprocess.Process, grace: float = 15) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)  # uvicorn: graceful shutdown, lifespan end
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc in self._procs:
            self._procs.remove(proc)

    async def close(self) -> None:
        for proc in reversed(list(self._procs)):
            await self.stop(proc)
        for log in self._logs:
            log.close()
        atexit.unregister(self._kill_all)

    def _kill_all(self) -> None:
        for proc in self._procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)


class Server:
    """A server subprocess listening on 127.0.0.1:port."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @classmethod
    async def start(
        cls,
        procs: Processes,
        name: str,
        args: Sequence[str],
        *,
        env: dict[str, str],
        ready_path: str,
        port: int,
        within: float = 60,
    ) -> Server:
        proc = await procs.spawn(name, args, env=env)
        server = cls(name, proc, port, procs.log_dir / f"{name}.log")
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode} during start-up:\n{server.log_tail()}"
                )
            try:
                async with Http(port) as http:
                    status, _ = await http.request("GET", ready_path)
                if status == 200:
                    return server
            except (OSError, HttpError):
                pass
            await asyncio.sleep(0.1)
        await procs.stop(proc)
        raise RuntimeError(f"{name} did not become ready in {within:g} s:\n{server.log_tail()}")


class WorkerError(Exception):
    pass


class Worker:
    """A client process (bench.worker) and its JSON-lines channel."""

    def __init__(self, index: int, proc: asyncio.subprocess.Process) -> None:
        self.index = index
        self.proc = proc
        self._next = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            reply = msgspec.json.decode(line)
            future = self._pending.pop(reply["id"], None)
            if future is not None and not future.done():
                future.set_result(reply)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerError(f"client worker {self.index} exited"))

    async def call(self, cmd: str, rpc_timeout: float = 300, **args: Any) -> Any:
        assert self.proc.stdin is not None
        ident = self._next
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        self.proc.stdin.write(msgspec.json.encode({"id": ident, "cmd": cmd, **args}) + b"\n")
        await self.proc.stdin.drain()
        try:
            reply = await asyncio.wait_for(future, rpc_timeout)
        finally:
            self._pending.pop(ident, None)
        if not reply["ok"]:
            raise WorkerError(f"worker {self.index} {cmd}: {reply['error']}")
        return reply["result"]

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    async def quit(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            with contextlib.suppress(Exception):
                self.proc.stdin.write(b'{"id": -1, "cmd": "quit"}\n')
                self.proc.stdin.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class Workers:
    """The pool of client processes; clients are spread over them evenly."""

    def __init__(self, workers: list[Worker]) -> None:
        self.all = workers

    @classmethod
    async def start(cls, procs: Processes, count: int) -> Workers:
        workers = []
        for index in range(count):
            proc = await procs.spawn(
                f"worker-{index}", [sys.executable, "-m", "bench.worker"], pipes=True
            )
            workers.append(Worker(index, proc))
        pool = cls(workers)
        await pool.each("stats", rpc_timeout=60)  # imported and listening
        return pool

    def take(self, count: int) -> list[Worker]:
        return self.all[: max(1, min(count, len(self.all)))]

    @staticmethod
    def split(total: int, parts: int) -> list[int]:
        return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]

    async def each(
        self, cmd: str, workers: list[Worker] | None = None, rpc_timeout: float = 300, **args: Any
    ) -> list[Any]:
        chosen = self.all if workers is None else workers
        calls = (w.call(cmd, rpc_timeout=rpc_timeout, **args) for w in chosen)
        return list(await asyncio.gather(*calls))

    async def connect(
        self, workers: list[Worker], url: str, token: str, n: int, **args: Any
    ) -> list[Any]:
        """``n`` clients spread over ``workers``."""
        shares = self.split(n, len(workers))
        return list(
            await asyncio.gather(
                *(
                    w.call("connect", url=url, token=token, n=k, **args)
                    for w, k in zip(workers, shares, strict=True)
                    if k
                )
            )
        )

    async def forget(self) -> None:
        await self.each("forget", rpc_timeout=120)

    def cpu(self) -> float:
        return sum(w.cpu() for w in self.all)

    async def quit(self) -> None:
        for worker in self.all:
            await worker.quit()
