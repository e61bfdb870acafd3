"""Node.js for the tests: ``clients/js`` with its locked npm packages installed.

The SDK tests, the bundle check and the browser tests (axe-core) need them. With
``CI=true`` a machine without node/npm, or an ``npm ci`` that fails, fails the
tests (``unavailable``); elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .conftest import unavailable

__all__ = ["JS_DIR", "REPO", "node_with_packages"]

REPO = Path(__file__).resolve().parent.parent
JS_DIR = REPO / "clients" / "js"
_INSTALL_TIMEOUT = 300


def _installed() -> bool:
    """node_modules matches the lockfile (npm writes its own copy of it there)."""
    hidden = JS_DIR / "node_modules" / ".package-lock.json"
    if not hidden.is_file():
        return False
    wanted = json.loads((JS_DIR / "package-lock.json").read_text())["packages"]
    have = json.loads(hidden.read_text())["packages"]
    return all(have.get(k, {}).get("version") == v.get("version") for k, v in wanted.items() if k)


def node_with_packages() -> str:
    """The ``node`` executable, after ``npm ci`` in clients/js if needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm must be on PATH (clients/js: the SDK, its build, axe-core)")
    assert node is not None
    assert npm is not None
    if not _installed():
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=_INSTALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            unavailable(f"npm ci in clients/js timed out after {_INSTALL_TIMEOUT} s")
        if done.returncode != 0:
            unavailable(f"npm ci in clients/js failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return node
