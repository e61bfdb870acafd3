"""Composition root: turns Settings into a running database, store, services and ASGI app.

The only module (with ``cli``) that reads ``Settings``. Nothing here runs at
import time: resources open in the app's lifespan and close in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import structlog
from litestar import Litestar

from roomcast.config import Settings, resolve_jwt_secret
from roomcast.http.app import Services, create_app
from roomcast.outbox.database import connect, migrate
from roomcast.outbox.embedded import EmbeddedPostgres
from roomcast.outbox.store import EventStore
from roomcast.service.rooms import RoomService
from roomcast.service.sources import Sources
from roomcast.tokens import TokenVerifier

__all__ = ["build_app", "database", "open_services", "verifier"]

log = structlog.get_logger("roomcast")


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """A DSN: ``DATABASE_URL`` as given, or an embedded server started for the duration."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.data_dir.resolve())
    # Starting blocks for up to a second or two (initdb on first run): off the loop.
    dsn = await asyncio.to_thread(server.start)
    log.info("embedded_postgres_started", data_dir=str(settings.data_dir))
    try:
        yield dsn
    finally:
        await asyncio.to_thread(server.stop)
        log.info("embedded_postgres_stopped")


def verifier(settings: Settings) -> TokenVerifier:
    return TokenVerifier(
        secret=resolve_jwt_secret(settings),
        public_key=settings.jwt_public_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    async with database(settings) as dsn:
        pool = await connect(dsn, max_size=settings.db_pool_size)
        try:
            await migrate(pool)
            store = EventStore(pool, snapshot_every=settings.snapshot_every)
            yield Services(
                store=store,
                rooms=RoomService(store),
                verifier=verifier(settings),
                sources=Sources(),
            )
        finally:
            await pool.close()


def build_app(settings: Settings, *, ready: Callable[[], None] | None = None) -> Litestar:
    """The ASGI app. ``ready`` is called once its services are open (tests await it)."""

    @contextlib.asynccontextmanager
    async def services() -> AsyncIterator[Services]:
        async with open_services(settings) as opened:
            if ready is not None:
                ready()
            yield opened

    return create_app(
        open_services=services,
        max_body_bytes=settings.max_body_bytes,
        cors_origins=settings.cors_origins,
    )
