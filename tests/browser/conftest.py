"""Browser fixtures: Debian's Chromium driven by Playwright, and ``roomcast serve`` as a
child process the tests can SIGKILL.

``playwright install`` downloads its own browser builds and cannot work on these
machines, so Chromium is the system's (``/usr/bin/chromium``, installed by
``.ci/run`` when missing) and Playwright is told where it is. With ``CI=true``
a missing Chromium or Playwright fails the tests (``unavailable``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import unavailable
from ..serve_process import ServeProcess

ARTIFACTS = Path(__file__).parent / "artifacts"
"""Screenshots of each step, gitignored (docs/img/verified-draw.png is one from a run)."""


def chromium_path() -> str:
    for candidate in (
        os.environ.get("ROOMCAST_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    unavailable("Chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable,
            # As root (CI, containers) Chromium refuses its sandbox.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
def site(own_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``roomcast serve`` on its own database (SIGKILLed by the tests, so not shared)."""
    server = ServeProcess(own_database_url, tmp_path_factory.mktemp("site"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder, emptied of the last run's step screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("[0-9][0-9]-*.png"):
        old.unlink()
    return ARTIFACTS
