"""Connection stats across two nodes on one Redis (`gateway/cluster_stats.py`).

Every node's `/api/admin/stats` lists both nodes under `cluster`; a node that
stops cleanly leaves at once (its TTL here is far longer than the test). The
totals across nodes and the crash case are in test_cluster_processes.py.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from roomcast.client import RoomcastClient
from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from .support import bearer, create_room, token, user_id


def node_settings(database_url: str, redis_url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=JWT_SECRET,
        data_dir=data_dir,
        node_id=f"stats-{uuid.uuid4().hex[:6]}",
        stats_ttl_seconds=60.0,  # published every 20 s: a test that waits for it would hang
        rest_rate_limit=0,
    )


async def stats(http: httpx.AsyncClient, node: RunningServer) -> dict[str, Any]:
    headers = bearer(token(node, user_id(), roles=["admin"]))
    response = await http.get("/api/admin/stats", headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_both_nodes_counted_and_a_clean_stop_leaves_at_once(
    own_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
):
    a_settings = node_settings(own_database_url, redis_url, tmp_path_factory.mktemp("a"))
    b_settings = node_settings(own_database_url, redis_url, tmp_path_factory.mktemp("b"))
    org = user_id()
    with run_server(a_settings) as a:
        b_server = run_server(b_settings)
        b = b_server.__enter__()
        stopped = False
        try:
            async with httpx.AsyncClient(base_url=a.url, timeout=30) as http:
                room_id = await create_room(http, a, org)
                clients = [
                    RoomcastClient(a.url, a.token(org)),
                    RoomcastClient(b.url, b.token(org)),
                    RoomcastClient(b.url, b.token(org)),
                ]
                try:
                    for client in clients:
                        await client.connect()
                        await client.subscribe(room_id)
                    # Each node published its entry at start-up; the answering node
                    # counts itself live (B's entry is from before its sockets).
                    data = await stats(http, a)
                    lines = {n["nodeId"]: n for n in data["cluster"]["nodes"]}
                    assert {a_settings.node_id, b_settings.node_id} <= set(lines)
                    assert data["cluster"]["complete"] is True
                    assert data["subscribers"][room_id] == 1  # A's own
                    assert lines[a_settings.node_id]["connections"] == data["connections"]
                    assert lines[a_settings.node_id]["ageSeconds"] == 0.0
                    async with httpx.AsyncClient(base_url=b.url, timeout=30) as http_b:
                        from_b = await stats(http_b, b)
                    assert from_b["subscribers"][room_id] == 2  # B's own
                    assert {a_settings.node_id, b_settings.node_id} <= {
                        n["nodeId"] for n in from_b["cluster"]["nodes"]
                    }
                finally:
                    for client in clients:
                        await client.close()
                await asyncio.to_thread(b_server.__exit__, None, None, None)
                stopped = True
                after = await stats(http, a)
                ids = {n["nodeId"] for n in after["cluster"]["nodes"]}
                assert b_settings.node_id not in ids
                assert a_settings.node_id in ids
        finally:
            if not stopped:
                b_server.__exit__(None, None, None)
