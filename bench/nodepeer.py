"""The Node.js Socket.IO peer (bench/peers/node/): install it, or say why it is skipped.

The peer is what the seeds' systems ran: socket.io 4.8 on Node.js, JWT on
connect, ``room:subscribe``, one broadcast to the room per event, and, as a
second mode, socket.io's connection state recovery with the in-memory adapter.
Its packages come from ``package-lock.json`` through ``npm ci`` into a
gitignored ``node_modules`` when that is missing or older than the lockfile.
Without ``node``/``npm`` (or when ``npm ci`` fails) the peer is skipped with a
printed note that ``latest.json`` keeps; the figures against it then have no data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bench.procs import ROOT

__all__ = ["NODE_DIR", "NodePeer", "prepare"]

NODE_DIR = ROOT / "bench" / "peers" / "node"
SERVER = NODE_DIR / "server.mjs"
_STAMP = NODE_DIR / "node_modules" / ".roomcast-lock-sha256"
_INSTALL_TIMEOUT = 300.0
_PACKAGES = ("socket.io", "engine.io", "socket.io-adapter", "ws", "jsonwebtoken", "bufferutil")


@dataclass
class NodePeer:
    available: bool
    note: str = ""
    node: str = ""
    """The ``node`` executable."""
    node_version: str = ""
    packages: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.available else "skipped",
            "note": self.note,
            "node_version": self.node_version,
            "packages": self.packages,
        }


async def _run(*args: str, within: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return -1, f"timed out after {within:g} s"
    return proc.returncode or 0, out.decode(errors="replace")


def _lock_hash() -> str:
    return hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()


def _installed_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        with contextlib.suppress(OSError, msgspec.DecodeError, KeyError):
            manifest = NODE_DIR / "node_modules" / name / "package.json"
            meta = msgspec.json.decode(manifest.read_bytes())
            out[name] = str(meta["version"])
    return out


async def prepare() -> NodePeer:
    """Find node and npm, ``npm ci`` if needed; never raises for a missing toolchain."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        return NodePeer(
            False,
            f"Node.js peer skipped: {missing} not found on PATH; "
            "the figures against it have no data",
        )
    code, version = await _run(node, "--version", within=30)
    if code != 0:
        return NodePeer(False, f"Node.js peer skipped: `node --version` failed: {version[-200:]}")
    wanted = _lock_hash()
    have = _STAMP.read_text().strip() if _STAMP.exists() else ""
    if have != wanted:
        code, out = await _run(
            npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", within=_INSTALL_TIMEOUT
        )
        if code != 0:
            lines = [line for line in out.splitlines() if line.strip()][-3:]
            return NodePeer(
                False,
                f"Node.js peer skipped: `npm ci` in bench/peers/node failed ({code}): "
                + " | ".join(lines)[-400:],
                node=node,
                node_version=version.strip(),
            )
        _STAMP.write_text(wanted + "\n")
    return NodePeer(
        True, "", node=node, node_version=version.strip(), packages=_installed_versions()
    )
