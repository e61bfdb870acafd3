"""The browser SDK (clients/js) with node's test runner against a real ``roomcast serve``
child process and PostgreSQL: SIGKILL and restart, a gap, token expiry, polling only,
the position kept in storage, typed refusals (clients/js/test/sdk.test.mjs).

Also: the bundle shipped in the package is exactly what clients/js builds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import JWT_SECRET
from ..js_tools import JS_DIR, node_with_packages
from ..serve_process import free_port

NODE_TEST_TIMEOUT = 420


def _only() -> list[str]:
    """``ROOMCAST_JS_TEST_ONLY=pattern``: run only the node tests whose name matches."""
    pattern = os.environ.get("ROOMCAST_JS_TEST_ONLY")
    return [f"--test-name-pattern={pattern}"] if pattern else []


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_packages()


def test_the_shipped_bundle_is_the_build_of_clients_js(node):
    done = subprocess.run(
        [node, "build.mjs", "--check"], cwd=JS_DIR, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _node_sdk(node: str) -> Path:
    sdk = JS_DIR / "dist" / "node" / "index.mjs"
    built = subprocess.run(
        [node, "build.mjs", "--node", str(sdk)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return sdk


def _env(database_url: str, tmp_path: Path, sdk: Path, log: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ROOMCAST_JWT_SECRET": JWT_SECRET,
        "ROOMCAST_DATA_DIR": str(tmp_path / "data"),
        "ROOMCAST_REST_RATE_LIMIT": "0",
        "ROOMCAST_LOG_LEVEL": "warning",
        "ROOMCAST_TEST_PYTHON": sys.executable,
        "ROOMCAST_TEST_PORT": str(free_port()),
        "ROOMCAST_TEST_SECRET": JWT_SECRET,
        "ROOMCAST_TEST_SDK": sdk.as_uri(),
        "ROOMCAST_TEST_LOG": str(log),
    }
    env.pop("REDIS_URL", None)
    return env


def test_sdk_against_a_real_server(node, own_database_url, tmp_path):
    log = tmp_path / "serve.log"
    env = _env(own_database_url, tmp_path, _node_sdk(node), log)
    done = subprocess.run(
        [node, "--test", "--test-reporter=spec", *_only(), "test/sdk.test.mjs"],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_TEST_TIMEOUT,
    )
    server_log = log.read_text()[-3000:] if log.exists() else ""
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n--- server log ---\n{server_log}"
    if not _only():
        assert "ℹ fail 0" in done.stdout, done.stdout
        assert "ℹ pass 7" in done.stdout, done.stdout


REPLAY_CAP = 40


def test_sdk_pages_past_the_subscribe_replay_cap(node, own_database_url, tmp_path):
    """clients/js/test/replay_cap.test.mjs: a server that replays at most REPLAY_CAP seqs
    per subscribe; the SDK pages the rest while live events arrive (with frames and
    without)."""
    log = tmp_path / "serve.log"
    env = {
        **_env(own_database_url, tmp_path, _node_sdk(node), log),
        "ROOMCAST_SUBSCRIBE_REPLAY_MAX": str(REPLAY_CAP),
        "ROOMCAST_TEST_REPLAY_CAP": str(REPLAY_CAP),
    }
    done = subprocess.run(
        [node, "--test", "--test-reporter=spec", "test/replay_cap.test.mjs"],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_TEST_TIMEOUT,
    )
    server_log = log.read_text()[-3000:] if log.exists() else ""
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n--- server log ---\n{server_log}"
    assert "ℹ fail 0" in done.stdout, done.stdout
    assert "ℹ pass 2" in done.stdout, done.stdout
