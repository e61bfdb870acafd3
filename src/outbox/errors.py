"""Translate asyncpg's exceptions into ours at the boundary (``raise … from exc``).

* StaleVersion            the compare-and-set on the stream head found another version
* DuplicateIdempotencyKey  a concurrent request stored the same key first
* HeadLocked              a grouped append found a stream head locked by another transaction
* ServiceUnavailable       (domain) PostgreSQL cannot be reached or is shutting down
* InDoubt                 (a ServiceUnavailable) the connection failed while a write was
                          in PostgreSQL's hands: it may have committed (the store settles it)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from roomcast.domain.errors import ServiceUnavailable

__all__ = [
    "DuplicateIdempotencyKey",
    "HeadLocked",
    "InDoubt",
    "StaleVersion",
    "is_unavailable",
    "map_db_errors",
]


class StaleVersion(Exception):
    """The stream is not at the version the append was decided on."""


class DuplicateIdempotencyKey(Exception):
    """Another request with the same Idempotency-Key committed first."""


class HeadLocked(Exception):
    """A grouped append did not wait for a stream head another transaction holds."""


class InDoubt(ServiceUnavailable):
    """The connection failed after a write was sent: it may or may not have committed.

    ``server_pid``: the backend that ran it, which the store ends before it
    looks the write's first event id up (so it cannot commit after the look).
    """

    def __init__(self, cause: ServiceUnavailable, server_pid: int | None) -> None:
        super().__init__(cause.message, cause.details)
        self.server_pid = server_pid


# Errors that mean "the database is not there right now", not "your query is wrong".
# asyncpg's client-side states count: a connection cut mid-protocol surfaces as
# InternalClientError ("cannot switch to state 11") or an InterfaceError.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    asyncpg.LockNotAvailableError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (raised by asyncpg or a socket) means the database is unreachable."""
    return isinstance(exc, _UNAVAILABLE)


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
