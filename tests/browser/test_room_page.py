"""The live room page in a real Chromium, two browser contexts as two users, against a
real ``roomcast serve`` and PostgreSQL.

The tests run in order on one scenario (a room, its organizer Alice and participant
Bob): join through the link, a draw verified in Bob's browser, Bob offline while Alice
makes 30 changes, the server SIGKILLed and restarted, a reload that keeps the
position, the close that reveals the seed, then axe-core on ``/`` and ``/ops``.
Every step leaves a screenshot in ``tests/browser/artifacts/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from roomcast.tokens import mint

from ..conftest import JWT_SECRET
from ..js_tools import JS_DIR, node_with_packages
from ..serve_process import ServeProcess

pytestmark = pytest.mark.browser

WAIT_MS = 30_000
# What Chromium itself logs while the server is down or the page offline: the
# socket's failed reconnection attempts. Anything else on the console is a bug.
_NETWORK_NOISE = re.compile(
    r"WebSocket connection to .* failed|Failed to load resource: net::ERR_"
    r"|ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED"
)


@dataclass
class User:
    name: str
    context: Any
    page: Any
    console: list[str] = field(default_factory=list)
    user_id: str = ""

    def problems(self, *, network_ok: bool = False) -> list[str]:
        return [m for m in self.console if not (network_ok and _NETWORK_NOISE.search(m))]


@dataclass
class Scenario:
    site: ServeProcess
    alice: User
    bob: User
    artifacts: Path
    room_id: str = ""
    org_token: str = ""
    shots: int = 0

    async def shot(self, user: User, name: str) -> Path:
        self.shots += 1
        path = self.artifacts / f"{self.shots:02d}-{user.name.lower()}-{name}.png"
        await user.page.screenshot(path=str(path), full_page=True)
        return path


async def _new_user(browser: Any, site: ServeProcess, name: str, width: int) -> User:
    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    user = User(name=name, context=context, page=page)
    page.on(
        "console",
        lambda m: (
            user.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda e: user.console.append(f"pageerror: {e}"))
    await page.goto(site.url + "/")
    await page.locator("#sign-in").wait_for(state="visible")  # the page knows its sign-in
    if await page.locator("#sign-in-form").is_visible():
        await page.get_by_label("Your name").fill(name)
        await page.get_by_role("button", name="Sign in").click()
    else:  # no built-in issuer on this server: the token form
        await page.get_by_label(re.compile("^Access token")).fill(site.token(name.lower(), name))
        await page.get_by_role("button", name="Use this token").click()
    await page.locator("#whoami").wait_for(state="visible")
    user.user_id = await page.evaluate(
        "JSON.parse(sessionStorage.getItem('roomcast:auth')).user.id"
    )
    return user


@pytest.fixture(scope="module")
async def scenario(browser, site, artifacts):
    alice = await _new_user(browser, site, "Alice", 1100)
    bob = await _new_user(browser, site, "Bob", 360)  # a phone: the page must work at 360 px
    yield Scenario(site=site, alice=alice, bob=bob, artifacts=artifacts)
    await alice.context.close()
    await bob.context.close()


async def _log_seqs(user: User) -> list[int]:
    return [
        int(s)
        for s in await user.page.locator("#log li").evaluate_all(
            "els => els.map(e => e.dataset.seq)"
        )
    ]


async def _head(s: Scenario) -> int:
    async with httpx.AsyncClient(base_url=s.site.url, timeout=30) as http:
        response = await http.get(
            f"/api/rooms/{s.room_id}", headers={"Authorization": f"Bearer {s.org_token}"}
        )
    return int(response.json()["data"]["version"])


async def _wait_seq(user: User, seq: int) -> None:
    await user.page.locator(f"#log li[data-seq='{seq}']").wait_for(timeout=WAIT_MS)
    await user.page.wait_for_function(
        "seq => window.roomcastPage.client && window.roomcastPage.client.status === 'live'",
        arg=seq,
        timeout=WAIT_MS,
    )


async def _rest(s: Scenario, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=s.site.url, timeout=30) as http:
        response = await http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {s.org_token}"}
        )
    assert response.status_code in (200, 201), response.text
    return response.json()["data"]


async def test_the_organizer_creates_a_room_and_the_participant_joins_through_the_link(scenario):
    s = scenario
    alice, bob = s.alice, s.bob
    await alice.page.get_by_label("Room name").fill("New Year Lottery")
    await alice.page.get_by_role("button", name="Create room").click()
    await alice.page.locator("#room-title").filter(has_text="New Year Lottery").wait_for()
    link = await alice.page.get_by_label("Join link", exact=True).input_value()
    s.room_id = link.split("room=")[1]
    s.org_token = await alice.page.evaluate(
        "JSON.parse(sessionStorage.getItem('roomcast:auth')).accessToken"
    )
    await s.shot(alice, "room-created")

    await bob.page.goto(link)
    await bob.page.get_by_role("button", name="Join this room").click()
    await bob.page.locator("#participants li", has_text="Bob").wait_for()
    await alice.page.locator("#participants li", has_text="Bob").wait_for()  # live, on Alice's page
    await bob.page.locator("#participants li", has_text="Bob").locator(".online").wait_for()
    await s.shot(bob, "joined")
    assert alice.problems() == []
    assert bob.problems() == []


async def test_a_draw_shows_the_winner_verified_in_the_participants_browser(scenario):
    s = scenario
    alice, bob = s.alice, s.bob
    await alice.page.get_by_label("Prize name").fill("Grand Prize")
    await alice.page.get_by_role("button", name="Add prize").click()
    await alice.page.locator("#prizes li", has_text="Grand Prize").wait_for()
    await alice.page.get_by_role("button", name="Activate room").click()
    await alice.page.locator("#room-status", has_text="active").wait_for()
    await alice.page.get_by_role("button", name="Draw", exact=True).click()

    winner = bob.page.locator("#winners li", has_text="Bob")
    await winner.locator("[data-verdict='chain']").wait_for(timeout=WAIT_MS)
    assert "verified" in await winner.inner_text()
    await s.shot(bob, "winner-chain-verified")
    await bob.page.locator("#notifications li", has_text="You won").wait_for(timeout=WAIT_MS)
    assert bob.problems() == []


async def test_offline_participant_sees_every_one_of_30_changes_once(scenario):
    s = scenario
    bob = s.bob
    before = await _head(s)
    await bob.context.set_offline(True)
    await bob.page.locator("#connection[data-status='offline']").wait_for(timeout=WAIT_MS)
    for i in range(30):
        await _rest(s, "POST", f"/api/rooms/{s.room_id}/prizes", {"name": f"Offline prize {i:02d}"})
    await s.shot(bob, "offline")
    await bob.context.set_offline(False)
    head = before + 30
    await _wait_seq(bob, head)
    await s.shot(bob, "back-online")

    seqs = await _log_seqs(bob)
    assert seqs == list(range(1, head + 1))  # every change once, none missing, none doubled
    for i in range(30):
        assert await bob.page.locator("#prizes li", has_text=f"Offline prize {i:02d}").count() == 1
    assert "caught up 30 events" in await bob.page.locator("#catchup").inner_text()
    assert bob.problems(network_ok=True) == []


async def test_both_pages_catch_up_after_a_server_sigkill_and_restart(scenario):
    s = scenario
    s.site.kill()
    for user in (s.alice, s.bob):
        await user.page.locator("#connection[data-status='offline']").wait_for(timeout=WAIT_MS)
    s.site.start()
    for i in range(5):
        await _rest(s, "POST", f"/api/rooms/{s.room_id}/prizes", {"name": f"After restart {i}"})
    head = await _head(s)
    for user in (s.alice, s.bob):
        await _wait_seq(user, head)
        assert await _log_seqs(user) == list(range(1, head + 1))
        await user.page.locator("#catchup", has_text="Reconnected").wait_for()
        await s.shot(user, "after-restart")
        assert user.problems(network_ok=True) == []


async def test_a_reload_keeps_the_position_without_a_full_replay(scenario):
    s = scenario
    bob = s.bob
    head = await _head(s)
    await bob.page.reload()
    await bob.page.locator(f"#log li[data-seq='{head}']").wait_for(timeout=WAIT_MS)
    await bob.page.wait_for_function(
        "() => window.roomcastPage.client?.status === 'live'", timeout=WAIT_MS
    )
    assert (
        await bob.page.evaluate("window.roomcastPage.client.stats.delivered") == 0
    )  # nothing replayed
    await _rest(s, "POST", f"/api/rooms/{s.room_id}/prizes", {"name": "After reload"})
    await _wait_seq(bob, head + 1)
    assert await bob.page.evaluate("window.roomcastPage.client.stats.delivered") == 1
    assert await _log_seqs(bob) == list(range(1, head + 2))
    await s.shot(bob, "after-reload")
    assert bob.problems(network_ok=True) == []


async def test_quiz_app_events_and_typing_are_live_on_the_other_page(scenario):
    s = scenario
    alice, bob = s.alice, s.bob
    await alice.page.get_by_label("Question").fill("Which letter comes second?")
    await alice.page.get_by_label("Options, separated by commas").fill("A, B, C")
    await alice.page.get_by_label("Correct answer").fill("B")
    await alice.page.get_by_label("Time limit (seconds)").fill("4")
    await alice.page.get_by_role("button", name="Publish question").click()

    await bob.page.get_by_role("button", name="B", exact=True).click()
    await bob.page.locator("[data-answer-result]", has_text="Correct! Rank 1").wait_for()
    await alice.page.locator("#quiz", has_text="#1 Bob").wait_for(timeout=WAIT_MS)  # ranks, live
    # The question closes by itself at its time limit; the leaderboard follows.
    await bob.page.locator("#quiz", has_text='The answer was "B"').wait_for(timeout=WAIT_MS)
    await bob.page.locator("#leaderboard li", has_text="Bob").wait_for(timeout=WAIT_MS)
    await s.shot(bob, "quiz")

    app = mint(
        secret=JWT_SECRET,
        sub="app:lottery",
        name="lottery",
        issuer="roomcast",
        audience="roomcast",
        ttl_seconds=600,
        extra={"app": "lottery", "permissions": ["realtime:publish"]},
    )
    async with httpx.AsyncClient(base_url=s.site.url, timeout=30) as http:
        response = await http.post(
            f"/api/rooms/{s.room_id}/events",
            json={"event": "lottery:draw_started", "data": {"drawNumber": 7}},
            headers={"Authorization": f"Bearer {app}", "X-App-Id": "lottery"},
        )
    assert response.status_code == 201, response.text
    await bob.page.locator("#app-events li", has_text="lottery:draw_started").wait_for()
    assert '"drawNumber":7' in await bob.page.locator("#app-events li").first.inner_text()

    await bob.page.get_by_label("Message draft (others see that you are typing)").type("hello")
    await alice.page.locator("#typing", has_text="Bob is typing").wait_for(timeout=WAIT_MS)
    await s.shot(alice, "typing")
    assert alice.problems(network_ok=True) == []
    assert bob.problems(network_ok=True) == []


async def test_closing_reveals_the_seed_and_the_draw_is_recomputed_in_the_browser(scenario):
    s = scenario
    alice, bob = s.alice, s.bob
    await alice.page.get_by_role("button", name="Close room").click()
    for user in (alice, bob):
        winner = user.page.locator("#winners li", has_text="Bob")
        await winner.locator("[data-verdict='seed']").wait_for(timeout=WAIT_MS)
        assert "draw recomputed" in await winner.inner_text()
    await s.shot(bob, "verified-draw")
    await bob.page.screenshot(path=str(s.artifacts / "verified-draw.png"), full_page=True)
    assert bob.problems(network_ok=True) == []


@pytest.fixture(scope="module")
def axe_script() -> Path:
    node_with_packages()
    return JS_DIR / "node_modules" / "axe-core" / "axe.min.js"


async def _axe(page: Any, script: Path) -> list[dict[str, Any]]:
    await page.add_script_tag(path=str(script))
    result = await page.evaluate("async () => (await axe.run(document)).violations")
    return [v for v in result if v["impact"] in ("serious", "critical")]


async def test_axe_finds_no_serious_violations_on_the_room_page_and_ops(
    scenario, browser, axe_script
):
    s = scenario
    # axe is injected as an inline script, which the pages' CSP forbids: this context
    # alone bypasses it.
    context = await browser.new_context(bypass_csp=True, viewport={"width": 360, "height": 800})
    try:
        page = await context.new_page()
        token = s.site.token("auditor", "Auditor", roles=["admin"])
        await page.goto(s.site.url + "/")
        assert await _axe(page, axe_script) == []  # the sign-in form
        await page.evaluate(
            "t => sessionStorage.setItem('roomcast:auth', JSON.stringify({accessToken: t,"
            " refreshToken: null, expiresAt: null, user: {id: 'auditor', name: 'Auditor'}}))",
            token,
        )
        await page.goto(f"{s.site.url}/?room={s.room_id}")
        await page.locator("#join-panel").wait_for()
        assert await _axe(page, axe_script) == []  # a room, as a visitor

        await page.goto(s.site.url + "/ops")
        await page.get_by_label(re.compile("^Access token")).fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await page.locator("#ops-state[data-status='live']").wait_for(timeout=WAIT_MS)
        await s.shot(User("Ops", context, page), "ops")
        assert await _axe(page, axe_script) == []
    finally:
        await context.close()


async def test_the_organizers_room_view_passes_axe(scenario, browser, axe_script):
    s = scenario
    context = await browser.new_context(bypass_csp=True, viewport={"width": 1100, "height": 900})
    try:
        page = await context.new_page()
        auth = await s.alice.page.evaluate("sessionStorage.getItem('roomcast:auth')")
        await page.goto(s.site.url + "/")
        await page.evaluate("a => sessionStorage.setItem('roomcast:auth', a)", auth)
        await page.goto(f"{s.site.url}/?room={s.room_id}")
        await page.locator("#winners li[data-winner-id]").first.wait_for(timeout=WAIT_MS)
        assert await _axe(page, axe_script) == []
    finally:
        await context.close()


def test_no_console_errors_or_warnings_beyond_the_network_outages(scenario):
    assert scenario.alice.problems(network_ok=True) == []
    assert scenario.bob.problems(network_ok=True) == []
