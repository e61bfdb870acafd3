"""Per-key asyncio locks that disappear when nobody holds or waits for them."""

from __future__ import annotations

import asyncio

__all__ = ["KeyedLock"]


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # holding or waiting


class KeyedLock:
    def __init__(self) -> None:
        self._locks: dict[str, _Entry] = {}

    def hold(self, key: str) -> _Holding:
        """``async with locks.hold(key):`` one holder per key at a time, in arrival order."""
        return _Holding(self._locks, key)

    def __len__(self) -> int:
        return len(self._locks)


class _Holding:
    # A class rather than @asynccontextmanager: once per command, at a third of the cost.
    __slots__ = ("_entry", "_key", "_locks")

    def __init__(self, locks: dict[str, _Entry], key: str) -> None:
        self._locks = locks
        self._key = key

    async def __aenter__(self) -> None:
        entry = self._locks.get(self._key)
        if entry is None:
            entry = self._locks[self._key] = _Entry()
        self._entry = entry
        entry.users += 1
        try:
            await entry.lock.acquire()
        except BaseException:  # cancelled while waiting
            self._leave()
            raise

    async def __aexit__(self, *_: object) -> None:
        self._entry.lock.release()
        self._leave()

    def _leave(self) -> None:
        entry = self._entry
        entry.users -= 1
        if entry.users == 0 and self._locks.get(self._key) is entry:
            del self._locks[self._key]
