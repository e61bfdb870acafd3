"""Helpers the end-to-end modules share: users, tokens, rooms, members."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from roomcast.tokens import mint

from ..conftest import JWT_SECRET, RunningServer

__all__ = ["bearer", "create_room", "join", "token", "user_id"]


def user_id() -> str:
    """A user id no other test uses (the session's server and database are shared)."""
    return f"usr_{uuid.uuid4().hex[:10]}"


def token(server: RunningServer, sub: str, **extra: Any) -> str:
    """A token for ``sub`` with extra claims (``roles``, ``app``, …)."""
    return mint(
        secret=JWT_SECRET,
        sub=sub,
        name=None,
        issuer=server.settings.jwt_issuer,
        audience=server.settings.jwt_audience,
        ttl_seconds=3600,
        extra=extra,
    )


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def create_room(
    http: httpx.AsyncClient, server: RunningServer, org: str, name: str = "Live"
) -> str:
    """A new room organized by ``org``; its id."""
    response = await http.post("/api/rooms", json={"name": name}, headers=server.auth(org))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["room"]["id"])


async def join(http: httpx.AsyncClient, server: RunningServer, room_id: str, who: str) -> str:
    """``who`` joins ``room_id``; their participant id."""
    response = await http.post(f"/api/rooms/{room_id}/participants", headers=server.auth(who))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["participant"]["id"])
