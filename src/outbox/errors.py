"""Translate asyncpg's exceptions into ours at the boundary (``raise … from exc``).

* StaleVersion            the compare-and-set on the stream head found another version
* DuplicateIdempotencyKey  a concurrent request stored the same key first
* HeadLocked              a grouped append found a stream head locked by another transaction
* ServiceUnavailable       (domain) PostgreSQL cannot be reached or is shutting down
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from roomcast.domain.errors import ServiceUnavailable

__all__ = ["DuplicateIdempotencyKey", "HeadLocked", "StaleVersion", "map_db_errors"]


class StaleVersion(Exception):
    """The stream is not at the version the append was decided on."""


class DuplicateIdempotencyKey(Exception):
    """Another request with the same Idempotency-Key committed first."""


class HeadLocked(Exception):
    """A grouped append did not wait for a stream head another transaction holds."""


# Errors that mean "the database is not there right now", not "your query is wrong".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    asyncpg.LockNotAvailableError,
)


@contextlib.contextmanager
def map_db_errors() -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "idempotency_keys_pkey":
            raise DuplicateIdempotencyKey(str(exc)) from exc
        # (stream_id, seq) or the stream row: another writer won the race.
        raise StaleVersion(str(exc)) from exc
    except _UNAVAILABLE as exc:
        raise ServiceUnavailable(
            "the database is unavailable; retry shortly", {"reason": type(exc).__name__}
        ) from exc
