"""Fixtures every end-to-end module shares (the server itself is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from ..conftest import RunningServer


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the session's server."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client
