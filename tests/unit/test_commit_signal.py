"""The relay's after-commit wake-up: the local relay at once, and a coalesced NOTIFY."""

from __future__ import annotations

import asyncio
from typing import Any

from roomcast.outbox import sql
from roomcast.outbox.notify import CommitSignal


class Pool:
    """Records the statements; each NOTIFY takes until ``release`` is set."""

    def __init__(self) -> None:
        self.statements: list[tuple[Any, ...]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def execute(self, *args: Any) -> None:
        self.statements.append(args)
        self.started.set()
        await self.release.wait()


NOTIFY = ("SELECT pg_notify($1, '')", sql.NOTIFY_CHANNEL)


async def test_without_a_local_relay_every_commit_notifies_other_processes():
    pool = Pool()
    signal = CommitSignal(pool)  # type: ignore[arg-type]
    signal()
    await signal.close()
    assert pool.statements == [NOTIFY]


async def test_the_local_relay_is_woken_and_other_processes_notified():
    """Even while the local relay publishes: `roomcast audit follow` listens too."""
    pool, woken = Pool(), []
    signal = CommitSignal(pool)  # type: ignore[arg-type]
    signal.wake_locally(lambda: woken.append(1))
    signal()
    await signal.close()
    assert woken == [1]
    assert pool.statements == [NOTIFY]


async def test_commits_during_a_notify_in_flight_are_coalesced_into_one_more():
    pool = Pool()
    pool.release.clear()
    signal = CommitSignal(pool)  # type: ignore[arg-type]
    signal()
    await pool.started.wait()
    for _ in range(5):
        signal()
    pool.release.set()
    await signal.close()
    assert pool.statements == [NOTIFY, NOTIFY]
