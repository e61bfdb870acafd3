"""The secret draw seed of each room: created at activation, read for draws and the reveal.

The domain stays pure: the HTTP handlers fetch the seed here and put it on the
command (``ChangeRoomStatus`` / ``DrawWinner``); ``decide`` checks it against the
room's commitment. The seed lives in ``room_secrets``, outside the log, until
closing the room reveals it in ``room:status_changed`` (docs/audit.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import asyncpg

from roomcast.domain.draw import SEED_BYTES
from roomcast.outbox.errors import map_db_errors

__all__ = ["RoomSeeds"]

# Only for a room that exists (the foreign key would raise otherwise), and never
# over an existing seed: the first writer wins, everyone then reads its seed.
_CREATE = """
    INSERT INTO room_secrets (stream_id, seed)
    SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM streams WHERE stream_id = $1)
    ON CONFLICT (stream_id) DO NOTHING
"""

_READ = "SELECT seed FROM room_secrets WHERE stream_id = $1"


def _new_seed() -> bytes:
    return secrets.token_bytes(SEED_BYTES)


class RoomSeeds:
    """asyncpg adapter for ``room_secrets``. Does not own the pool."""

    def __init__(self, pool: asyncpg.Pool, *, new_seed: Callable[[], bytes] = _new_seed) -> None:
        self._pool = pool
        self._new_seed = new_seed

    async def ensure(self, room_id: str) -> bytes | None:
        """The room's seed, created now if it has none; ``None`` if the room does not exist.

        Two statements on purpose: the read is a new snapshot, so it sees a seed
        that a concurrent activation committed while our insert waited for it.
        """
        with map_db_errors():
            await self._pool.execute(_CREATE, room_id, self._new_seed())
        return await self.get(room_id)

    async def get(self, room_id: str) -> bytes | None:
        with map_db_errors():
            seed = await self._pool.fetchval(_READ, room_id)
        return None if seed is None else bytes(seed)
