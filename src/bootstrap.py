"""Composition root: turns Settings into a running database, store, services and ASGI app.

The only module (with ``cli``) that reads ``Settings``. Nothing here runs at
import time: resources open in the app's lifespan and close in ``finally``.

One ASGI app serves both edges: Socket.IO under ``/socket.io/``, Litestar for
everything else. The lifespan (Litestar's) opens the database, the services,
and, unless disabled, the relay that publishes the outbox into the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import socketio
import structlog

from roomcast.config import Settings, resolve_jwt_secret
from roomcast.gateway.server import Gateway, GatewayServices
from roomcast.http.app import Services, create_app
from roomcast.outbox.database import connect, migrate
from roomcast.outbox.embedded import EmbeddedPostgres
from roomcast.outbox.housekeeping import housekeeping
from roomcast.outbox.notify import CommitSignal
from roomcast.outbox.relay import Publish, Relay
from roomcast.outbox.store import EventStore
from roomcast.service.draws import RoomSeeds
from roomcast.service.rooms import RoomService
from roomcast.service.sources import Sources
from roomcast.tokens import TokenVerifier

__all__ = ["build_app", "database", "redis_publisher", "running_relay", "verifier"]

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
async def running_relay(dsn: str, publish: Publish, settings: Settings) -> AsyncIterator[Relay]:
    relay = Relay(dsn, publish, poll_interval=settings.relay_poll_seconds)
    task = asyncio.create_task(relay.run(), name="relay")
    try:
        yield relay
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def redis_publisher(redis_url: str) -> Publish:
    """Publish into the gateways of every node through Redis (for ``roomcast relay``)."""
    from roomcast.gateway import jsoncodec
    from roomcast.gateway.delivery import room_name

    manager = socketio.AsyncRedisManager(
        redis_url, channel="roomcast", write_only=True, json=jsoncodec
    )

    async def publish(room_id: str, event: str, payload: Any) -> None:
        await manager.emit(event, payload, namespace="/", room=room_name(room_id))

    return publish


def node_status(relay: Relay | None, gateway: Gateway, settings: Settings) -> dict[str, object]:
    """This node's realtime side for /health: is its relay the publisher, how far behind."""
    relay_status: dict[str, object] = {"enabled": relay is not None}
    if relay is not None:
        relay_status.update(
            active=relay.stats.active,  # False on a standby node: another relay publishes
            published=relay.stats.published,
            lagSeconds=round(relay.stats.last_lag_seconds, 3),
        )
    return {
        "relay": relay_status,
        "sockets": {
            "connected": len(gateway.registry.users),
            "users": len(gateway.registry.sids_of_user),
        },
        "redis": {"configured": settings.redis_url is not None},
    }


def build_app(settings: Settings, *, ready: Callable[[], None] | None = None) -> Any:
    """The ASGI app. ``ready`` is called once its services are open (tests await it)."""
    gateway = Gateway(
        cors_origins=settings.cors_origins,
        ping_interval=settings.ping_interval_seconds,
        ping_timeout=settings.ping_timeout_seconds,
        redis_url=settings.redis_url,
        max_message_bytes=settings.max_body_bytes,
        max_frame_bytes=settings.max_socket_frame_bytes,
        events_per_minute=settings.socket_events_per_minute,
        typing_timeout=settings.typing_timeout_seconds,
    )

    @contextlib.asynccontextmanager
    async def services() -> AsyncIterator[Services]:
        async with contextlib.AsyncExitStack() as stack:
            dsn = await stack.enter_async_context(database(settings))
            stack.push_async_callback(gateway.close)  # last: after the relay has stopped
            pool = await connect(dsn, max_size=settings.db_pool_size)
            stack.push_async_callback(pool.close)
            await migrate(pool)
            await stack.enter_async_context(
                housekeeping(pool, ttl_seconds=settings.idempotency_ttl_seconds)
            )
            relay = None
            if settings.relay:
                relay = await stack.enter_async_context(
                    running_relay(dsn, gateway.publish, settings)
                )
            signal = CommitSignal(pool, local=relay.wake if relay else None)
            stack.push_async_callback(signal.close)
            store = EventStore(pool, snapshot_every=settings.snapshot_every)
            rooms = RoomService(store, on_commit=signal)
            tokens = verifier(settings)
            gateway.services = GatewayServices(store=store, rooms=rooms, verifier=tokens)
            if ready is not None:
                ready()
            yield Services(
                store=store,
                rooms=rooms,
                verifier=tokens,
                sources=Sources(),
                seeds=RoomSeeds(pool),
                status=lambda: node_status(relay, gateway, settings),
            )

    app = create_app(
        open_services=services,
        max_body_bytes=settings.max_body_bytes,
        cors_origins=settings.cors_origins,
    )
    return socketio.ASGIApp(gateway.sio, other_asgi_app=app, socketio_path="socket.io")
