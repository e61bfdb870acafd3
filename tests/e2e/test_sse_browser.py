"""Chromium's own EventSource on a room stream: token in the query, resume on its own."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ..conftest import RunningServer, unavailable
from .support import create_room, join, rename_many, user_id

CHROMIUM = os.environ.get("ROOMCAST_CHROMIUM", "/usr/bin/chromium")

# Collects what the page's EventSource receives; `window.sse` is read by the test.
_OPEN = """
([url]) => {
  window.sse = {events: [], errors: 0, opens: 0};
  const source = new EventSource(url);
  window.sse.source = source;
  source.onopen = () => { window.sse.opens += 1; };
  source.onerror = () => { window.sse.errors += 1; };
  const names = ["room:created", "participant:joined", "participant:left", "room:updated"];
  for (const name of [...names, "error"]) {
    source.addEventListener(name, (e) => {
      if (e.data === undefined) return;  // the connection's own error, not ours
      window.sse.events.push({event: name, id: e.lastEventId, data: JSON.parse(e.data)});
    });
  }
}
"""


@pytest.fixture
async def page(server: RunningServer) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    if shutil.which(CHROMIUM) is None:
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            opened = await browser.new_page()
            await opened.goto(f"{server.url}/health")  # same origin as the stream
            yield opened
        finally:
            await browser.close()


async def test_eventsource_follows_a_room_until_the_reader_is_removed(
    server: RunningServer, http: httpx.AsyncClient, page: Any
):
    org, bob = user_id(), user_id()
    room_id = await create_room(http, server, org)
    part_id = await join(http, server, room_id, bob)
    url = f"/api/rooms/{room_id}/stream?lastEventId=0&access_token={server.token(bob)}"
    await page.evaluate(_OPEN, [url])
    await page.wait_for_function("window.sse.events.length >= 2", timeout=30_000)
    await rename_many(http, server, org, room_id, 5, concurrency=1)
    await page.wait_for_function("window.sse.events.length >= 7", timeout=30_000)
    seen = await page.evaluate("window.sse.events")
    assert [int(e["id"]) for e in seen] == list(range(1, 8))
    assert [e["event"] for e in seen[:2]] == ["room:created", "participant:joined"]
    assert all(int(e["id"]) == e["data"]["seq"] for e in seen)

    # The organizer removes bob: his stream ends with the typed error, and
    # EventSource's reconnect (Last-Event-ID: 8) is refused with a 403, so it stops.
    removed = await http.delete(
        f"/api/rooms/{room_id}/participants/{part_id}", headers=server.auth(org)
    )
    assert removed.status_code == 200, removed.text
    await page.wait_for_function("window.sse.events.some(e => e.event === 'error')", timeout=30_000)
    await page.wait_for_function("window.sse.source.readyState === 2", timeout=30_000)
    seen = await page.evaluate("window.sse.events")
    assert [e["event"] for e in seen[-2:]] == ["participant:left", "error"]
    assert seen[-1]["data"]["code"] == "PERMISSION_DENIED"


async def test_a_new_eventsource_from_the_last_id_misses_nothing(
    server: RunningServer, http: httpx.AsyncClient, page: Any
):
    org = user_id()
    room_id = await create_room(http, server, org)
    url = f"/api/rooms/{room_id}/stream?lastEventId=0&access_token={server.token(org)}"
    await page.evaluate(_OPEN, [url])
    await page.wait_for_function("window.sse.events.length >= 1", timeout=30_000)
    # Cut the connection from the client's side, as a network drop would: a new
    # EventSource on the same URL with the last id, the way the browser retries.
    await page.evaluate("window.sse.source.close()")
    await rename_many(http, server, org, room_id, 4, concurrency=1)
    last = await page.evaluate("window.sse.events.at(-1).id")
    resume = f"/api/rooms/{room_id}/stream?lastEventId={last}&access_token={server.token(org)}"
    kept = await page.evaluate("window.sse.events")
    await page.evaluate(_OPEN, [resume])
    await page.wait_for_function("window.sse.events.length >= 4", timeout=30_000)
    seen = kept + await page.evaluate("window.sse.events")
    assert [int(e["id"]) for e in seen] == [1, 2, 3, 4, 5]
