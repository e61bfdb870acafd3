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


class TimedPool(Pool):
    """Also records when each NOTIFY was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent_at: list[float] = []

    async def execute(self, *args: Any) -> None:
        self.sent_at.append(asyncio.get_running_loop().time())
        await super().execute(*args)


async def test_while_the_local_relay_publishes_other_processes_are_told_once_per_interval():
    """Only observers listen then: the commits of one interval share one NOTIFY."""
    pool = TimedPool()
    signal = CommitSignal(pool, observer_interval=0.05)  # type: ignore[arg-type]
    signal.wake_locally(lambda: None, active=lambda: True)
    signal()
    await pool.started.wait()  # the first at once
    pool.started.clear()
    signal()
    signal()
    await asyncio.wait_for(pool.started.wait(), 5)
    await signal.close()
    assert pool.statements == [NOTIFY, NOTIFY]
    assert pool.sent_at[1] - pool.sent_at[0] >= 0.045


async def test_a_standby_local_relay_does_not_slow_the_notify():
    """Another process publishes: it must hear of every commit at once."""
    pool = TimedPool()
    signal = CommitSignal(pool, observer_interval=60)  # type: ignore[arg-type]
    signal.wake_locally(lambda: None, active=lambda: False)
    for _ in range(3):
        signal()
        await asyncio.wait_for(pool.started.wait(), 5)
        pool.started.clear()
    await signal.close()
    assert pool.statements == [NOTIFY, NOTIFY, NOTIFY]
    assert pool.sent_at[-1] - pool.sent_at[0] < 5


async def test_a_driver_error_on_notify_is_logged_not_left_in_the_task():
    """A cut connection surfaces as asyncpg's InternalClientError ("cannot switch to
    state 11"): it must not escape the fire-and-forget task ("never retrieved")."""
    import asyncpg

    class Broken(Pool):
        async def execute(self, *args: Any) -> None:
            await super().execute(*args)
            raise asyncpg.InternalClientError("cannot switch to state 11")

    pool = Broken()
    signal = CommitSignal(pool)  # type: ignore[arg-type]
    signal()
    task = signal._task
    assert task is not None
    await signal.close()
    assert task.exception() is None
    assert pool.statements == [NOTIFY]
