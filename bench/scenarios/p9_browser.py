"""P9 browser: a draw → the winner visible in another user's room page (its DOM updated).

Ours: a participant's room page (``/``, the browser SDK from ``/client/roomcast.js``)
in Debian's Chromium, driven by Playwright; a ``MutationObserver`` in the page
stamps the wall clock (``Date.now()``) when the winner's row appears. The
organizer's draw is sent over REST; the figure is that stamp minus the moment
the draw was sent. Baseline, for the same draws at the same time:
``roomcast.client.RoomcastClient`` subscribed in this process, stamped when its
``winner:selected`` handler runs. So the ratio is what the browser path (SDK,
page state, rendering in an animation frame) adds to the same delivery.

Each repeat uses a fresh room with enough participants for every draw (a winner
is no longer eligible). Skipped, with the reason, where Chromium or Playwright
is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench.context import Bench, log
from bench.httpc import Http
from bench.stats import Scenario, Target, percentile

DRAWS = {"full": 50, "quick": 10}
_OBSERVER = """
() => {
  window.__winnerSeen = {};
  new MutationObserver(() => {
    for (const li of document.querySelectorAll('#winners li[data-winner-id]')) {
      const id = li.dataset.winnerId;
      if (!(id in window.__winnerSeen)) window.__winnerSeen[id] = Date.now();
    }
  }).observe(document.getElementById('winners'), {childList: true, subtree: true});
}
"""


def _chromium() -> str | None:
    for candidate in (os.environ.get("ROOMCAST_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium")


async def _room(b: Bench, people: int) -> tuple[str, str, str]:
    """A fresh active room with ``people`` participants and a prize for each;
    (room id, prize id, the watching participant's user id)."""
    room = await b.create_room(name="Browser draw room")
    users = [f"usr_p9_{room[-8:]}_{i}" for i in range(people)]
    for user in users:
        async with Http(b.app.port, b.token(user)) as http:
            await http.json("POST", f"/api/rooms/{room}/participants", None, expect=201)
    async with b.http() as http:
        prize = await http.json(
            "POST", f"/api/rooms/{room}/prizes", {"name": "P9", "quantity": people}, expect=201
        )
        await http.json("POST", f"/api/rooms/{room}/status", {"status": "active"}, expect=200)
    return room, str(prize["data"]["prize"]["id"]), users[0]


async def _repeat(b: Bench, browser: Any, draws: int) -> tuple[list[float], list[float]]:
    from roomcast.client import RoomcastClient

    room, prize, watcher = await _room(b, draws + 2)
    context = await browser.new_context()
    auth = json.dumps(
        {
            "accessToken": b.token(watcher),
            "refreshToken": None,
            "expiresAt": None,
            "user": {"id": watcher, "name": watcher},
        }
    )
    await context.add_init_script(f"sessionStorage.setItem('roomcast:auth', {json.dumps(auth)})")
    page = await context.new_page()
    seen: dict[str, float] = {}
    arrived: dict[str, asyncio.Event] = {}

    def on_winner(event: str, payload: dict[str, Any]) -> None:
        winner = payload["winner"]["id"]
        seen[winner] = time.time()
        arrived.setdefault(winner, asyncio.Event()).set()

    client = RoomcastClient(b.app.url, b.token(watcher))
    client.on("winner:selected", on_winner)
    ours: list[float] = []
    base: list[float] = []
    try:
        await client.connect()
        await client.subscribe(room)
        await page.goto(f"{b.app.url}/?room={room}")
        await page.wait_for_function("() => window.roomcastPage?.client?.status === 'live'")
        await page.evaluate(_OBSERVER)
        async with b.http() as http:
            for _ in range(draws):
                sent = time.time()
                answer = await http.json(
                    "POST", f"/api/rooms/{room}/draws", {"prizeId": prize}, expect=201
                )
                winner = str(answer["data"]["winner"]["id"])
                await page.wait_for_function(
                    "id => id in window.__winnerSeen", arg=winner, timeout=30_000
                )
                shown = await page.evaluate("id => window.__winnerSeen[id]", winner)
                await asyncio.wait_for(arrived.setdefault(winner, asyncio.Event()).wait(), 30)
                ours.append(shown / 1000 - sent)
                base.append(seen[winner] - sent)
    finally:
        await client.close()
        await context.close()
    return ours, base


async def run(b: Bench) -> Scenario:
    s = Scenario("P9", "Browser: draw → winner in another user's page (DOM updated)")
    executable = _chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        async_playwright = None  # type: ignore[assignment]
    if executable is None or async_playwright is None:
        s.status = "skipped"
        s.note = "needs Chromium (/usr/bin/chromium) and playwright (the test extra)"
        return s
    draws = DRAWS.get(b.plan.mode, 10)
    s.note = f"{draws} draws per repeat, each seen by one room page and one Python client"
    p50 = s.figure(
        "p50",
        "draw sent → winner row in the page's DOM, p50",
        "ms",
        "RoomcastClient (Python) handler, same draws",
        higher_is_better=False,
        target=Target("<=", 2.0, text="≤ 2× the Python client"),
    )
    p99 = s.figure(
        "p99",
        "draw sent → winner row in the page's DOM, p99",
        "ms",
        "RoomcastClient (Python) handler, same draws",
        higher_is_better=False,
    )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            for repeat in range(b.plan.repeats):
                ours, base = await _repeat(b, browser, draws)
                for fig, q in ((p50, 50), (p99, 99)):
                    fig.ours.append(percentile(ours, q) * 1000)
                    fig.base.append(percentile(base, q) * 1000)
                log(
                    f"P9 repeat {repeat + 1}: page p50 {p50.ours[-1]:.1f} ms "
                    f"p99 {p99.ours[-1]:.1f} ms; Python p50 {p50.base[-1]:.1f} ms"
                )
        finally:
            await browser.close()
    return s
