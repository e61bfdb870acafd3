"""Seed 003's token refresh handler, run unmodified in Node with the official
socket.io-client against the real server and its built-in issuer.

The server signs 2-second access tokens, so each socket gets ``token:expired``
soon after it connects; the handler refreshes and reconnects with the new
token. The seed's text never keeps the new refresh token, so its second
refresh is a reuse, which revokes the family (docs/api.md documents the trap
and the one-line fix, run here as ``fixed``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .test_js_client import JS_DIR, node  # noqa: F401  (node: the fixture)

SCRIPT = JS_DIR / "seed_refresh.mjs"


@pytest.fixture(scope="module")
def short_tokens(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("short-tokens")),
        access_token_ttl_seconds=2,
        rest_rate_limit=0,
    )
    with run_server(settings) as running:
        yield running


async def run(node_bin: str, server: RunningServer, name: str, mode: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        node_bin,
        str(SCRIPT),
        server.url,
        name,
        mode,
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("node seed_refresh.mjs did not finish within 60 s")
    assert process.returncode == 0, stderr.decode()
    [line] = stdout.decode().splitlines()
    result: dict[str, Any] = json.loads(line)
    return result


async def test_the_seed_handler_refreshes_and_reconnects(node: str, short_tokens: RunningServer):  # noqa: F811
    result = await run(node, short_tokens, "Seedy Sam", "seed")
    sign_in, report = result["signIn"], result["report"]
    first, second = report["connects"][:2]
    # Connected with the signed-in token; token:expired; the handler refreshed
    # (its JSON with no Content-Type), set auth.token and reconnected with it.
    assert first["token"] == sign_in["accessToken"]
    assert report["expired"][0]["reason"] == "expired"
    refresh = report["fetches"][1]
    assert refresh["path"] == "/api/auth/refresh"
    assert refresh["status"] == 200
    assert second["token"] == refresh["body"]["accessToken"] != first["token"]
    assert report["rest"][:2] == [200, 200]  # both tokens worked where they were used
    # The trap: at the next expiry the seed sends the used-up refresh token again.
    reuse = report["fetches"][2]
    assert reuse["status"] == 401
    assert reuse["body"]["error"]["details"] == {"reason": "reused"}
    assert len(report["connects"]) == 2
    [refused] = report["connectErrors"]
    assert refused["data"]["code"] == "AUTHENTICATION_FAILED"


async def test_the_handler_that_keeps_the_new_refresh_token_goes_on(
    node: str,  # noqa: F811
    short_tokens: RunningServer,
):
    result = await run(node, short_tokens, "Careful Cat", "fixed")
    report = result["report"]
    tokens = [c["token"] for c in report["connects"]]
    assert len(tokens) == 4
    assert len(set(tokens)) == 4
    assert [f["status"] for f in report["fetches"]] == [200, 200, 200, 200]
    assert report["rest"] == [200, 200, 200, 200]
    assert report["connectErrors"] == []
    assert [e["reason"] for e in report["expired"]][:3] == ["expired"] * 3
