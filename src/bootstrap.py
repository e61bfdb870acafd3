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
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import socketio
import structlog

from roomcast.config import Environment, Settings, issuer_enabled, resolve_jwt_secret
from roomcast.domain.errors import ServiceUnavailable
from roomcast.gateway.cluster_stats import ClusterStats
from roomcast.gateway.redis_presence import RedisPresence
from roomcast.gateway.redislink import RedisPublisher
from roomcast.gateway.server import Gateway, GatewayServices
from roomcast.gateway.stats import connection_stats
from roomcast.http.app import Services, create_app
from roomcast.http.app_events import PER_APP, PER_ROOM, AppLimits
from roomcast.http.sse import StreamLimits
from roomcast.jwks import JwksKeys
from roomcast.metrics import Metrics, NodeSample
from roomcast.origins import OriginPolicy
from roomcast.outbox.database import connect, migrate
from roomcast.outbox.directory import RoomDirectoryStore
from roomcast.outbox.embedded import EmbeddedPostgres
from roomcast.outbox.housekeeping import housekeeping
from roomcast.outbox.notify import CommitSignal
from roomcast.outbox.reaction_queue import ReactionQueue
from roomcast.outbox.recovery_log import RecoveryLog
from roomcast.outbox.refresh_tokens import RefreshTokens
from roomcast.outbox.relay import Publisher, Relay
from roomcast.outbox.revocations import Revocations
from roomcast.outbox.store import EventStore
from roomcast.service.auth import TokenIssuer
from roomcast.service.directory import RoomDirectory
from roomcast.service.draws import RoomSeeds
from roomcast.service.notifications import NotificationService
from roomcast.service.quiz import QuizService, deadline_sweeper
from roomcast.service.quiz_secrets import QuizSecrets
from roomcast.service.ratelimit import Limiter
from roomcast.service.reactions import Reactions, Reactor
from roomcast.service.redis_ratelimit import RedisBreaker, RedisRateLimiter, limits_client
from roomcast.service.rooms import RoomService
from roomcast.service.sources import Sources
from roomcast.tokens import TokenVerifier

__all__ = [
    "admin_stats",
    "build_app",
    "database",
    "kept_jwks",
    "kept_revocations",
    "node_id",
    "node_sample",
    "origin_policy",
    "reacting_relay",
    "reactor",
    "redis_publisher",
    "running_relay",
    "token_issuer",
    "verifier",
    "watching_positions",
]

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


def origin_policy(settings: Settings) -> OriginPolicy:
    """``ROOMCAST_CORS_ORIGINS``, plus local dev servers' origins outside production."""
    return OriginPolicy.of(
        settings.cors_origins, development=settings.env is not Environment.PRODUCTION
    )


def token_issuer(
    settings: Settings, pool: asyncpg.Pool, revocations: Revocations, sources: Sources
) -> TokenIssuer | None:
    """The built-in issuer, if it is on and there is a secret to sign with."""
    secret = resolve_jwt_secret(settings)
    # With a public key only RS256 verifies, and the issuer signs HS256.
    if not issuer_enabled(settings) or secret is None or settings.jwt_public_key:
        return None

    async def revoke(jti: str, expires_at: Any, revoked_by: str) -> None:
        await revocations.revoke(jti, expires_at=expires_at, revoked_by=revoked_by)

    return TokenIssuer(
        RefreshTokens(pool),
        secret=secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl_seconds=settings.access_token_ttl_seconds,
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
        revoke=revoke,
        now=sources.now,
        passcode=settings.signin_passcode,
    )


def verifier(
    settings: Settings,
    revoked: Callable[[str], bool] | None = None,
    jwks: JwksKeys | None = None,
) -> TokenVerifier:
    return TokenVerifier(
        secret=resolve_jwt_secret(settings),
        public_key=settings.jwt_public_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        revoked=revoked,
        jwks=jwks,
    )


@contextlib.asynccontextmanager
async def kept_jwks(settings: Settings) -> AsyncIterator[JwksKeys | None]:
    """The identity provider's keys (``ROOMCAST_JWKS_URL``), fetched before the node
    serves and kept current; None without the setting."""
    if not settings.jwks_url:
        yield None
        return
    keys = JwksKeys(
        settings.jwks_url,
        refresh_every=settings.jwks_refresh_seconds,
        cooldown=settings.jwks_cooldown_seconds,
    )
    # A failure is logged: the node serves, refusing JWKS tokens until a refresh succeeds.
    with contextlib.suppress(Exception):
        await keys.refresh()
    task = asyncio.create_task(keys.run(), name="jwks")
    try:
        yield keys
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def kept_revocations(pool: Any, dsn: str, settings: Settings) -> AsyncIterator[Revocations]:
    """The revoked-token set, loaded before the node serves, then kept current."""
    revocations = Revocations(
        pool,
        dsn,
        refresh_every=settings.revocation_refresh_seconds,
        retention_seconds=settings.revocation_retention_seconds,
    )
    await revocations.refresh()  # no token is verified before the set is known
    task = asyncio.create_task(revocations.run(), name="revocations")
    try:
        yield revocations
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def running_relay(
    dsn: str, publisher: Publisher, settings: Settings, *, reactor: Reactor | None = None
) -> AsyncIterator[Relay]:
    """The relay, and with ``reactor`` the reactions it queues, run while it publishes."""
    relay = Relay(
        dsn,
        publisher,
        poll_interval=settings.relay_poll_seconds,
        react_to=Reactions.EVENTS if reactor is not None else frozenset(),
        on_reacting=reactor.wake if reactor is not None else None,
        partitions=settings.relay_partitions,
        rebalance_interval=settings.relay_rebalance_seconds,
        name=f"roomcast-relay {node_id(settings)}",
    )
    tasks = [asyncio.create_task(relay.run(), name="relay")]
    if reactor is not None:
        reactor.active = relay.runs_reactions  # one reactor at a time (partition 0's relay)
        tasks.append(asyncio.create_task(reactor.run(), name="reactor"))
    try:
        yield relay
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def reactor(pool: asyncpg.Pool, notifications: NotificationService, settings: Settings) -> Reactor:
    """The reactions' own consumer (service/reactions.py), on the node's pool."""
    return Reactor(
        ReactionQueue(pool), Reactions(notifications), attempts=settings.reaction_attempts
    )


def event_store(pool: asyncpg.Pool, settings: Settings) -> EventStore:
    """The store as the settings shape it (snapshots, group commit)."""
    return EventStore(
        pool, snapshot_every=settings.snapshot_every, append_batch=settings.append_batch
    )


@contextlib.asynccontextmanager
async def reacting_relay(
    dsn: str, publisher: Publisher, settings: Settings
) -> AsyncIterator[Relay]:
    """A relay that also runs the reactions (``roomcast relay``: no HTTP, no sockets)."""
    pool = await connect(dsn, max_size=4)
    try:
        await migrate(pool)
        signal = CommitSignal(pool)
        notifications = NotificationService(
            event_store(pool, settings),
            Sources(),
            on_commit=signal,
        )
        reacting = reactor(pool, notifications, settings)
        async with running_relay(dsn, publisher, settings, reactor=reacting) as relay:
            signal.wake_locally(relay.wake, active=relay.holds_all)
            yield relay
        await signal.close()
    finally:
        await pool.close()


def redis_publisher(redis_url: str) -> RedisPublisher:
    """Publish into the gateways of every node through Redis (for ``roomcast relay``).

    A batch Redis did not wholly take raises ``PublishFailed``: the relay keeps its rows.
    """
    return RedisPublisher(redis_url)


@contextlib.asynccontextmanager
async def watching_positions(gateway: Gateway) -> AsyncIterator[None]:
    """The gateway's position check (gateway/roomwatch.py), for as long as it serves."""
    task = asyncio.create_task(gateway.positions.run(), name="position-check")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def node_id(settings: Settings) -> str:
    """``ROOMCAST_NODE_ID``, else host name and process id: unique among running nodes."""
    return settings.node_id or f"{socket.gethostname()}-{os.getpid()}"


def node_status(
    relay: Relay | None,
    gateway: Gateway,
    settings: Settings,
    limits: RedisBreaker | None = None,
) -> dict[str, object]:
    """This node's realtime side for /health: is its relay the publisher, how far behind;
    with ``limits``, whether the cluster-wide limits reach Redis."""
    relay_status: dict[str, object] = {"enabled": relay is not None}
    if relay is not None:
        relay_status.update(
            active=relay.stats.active,  # False on a standby node: other relays publish
            # Which rooms it publishes: the partitions (of partitionCount) it holds now.
            partitions=list(relay.stats.partitions),
            partitionCount=relay.stats.partition_count,
            liveRelays=relay.stats.live_relays,
            mismatchedRelays=relay.stats.mismatched_relays,
            published=relay.stats.published,
            lagSeconds=round(relay.stats.last_lag_seconds, 3),
            # Rows kept in the outbox because Redis did not take them (published again).
            unacked=relay.stats.unacked,
            publishFailures=relay.stats.publish_failures,
        )
    watch = gateway.positions
    redis: dict[str, object] = {"configured": settings.redis_url is not None}
    if (link := gateway.redis_status()) is not None:
        redis.update(link)
    if limits is not None:
        # While False, each node counts the shared limits on its own (no request fails).
        redis["limits"] = {"ok": limits.ok, "failures": limits.failures}
    return {
        "id": node_id(settings),
        "relay": relay_status,
        "sockets": {
            "connected": len(gateway.registry.users),
            "users": len(gateway.registry.sids_of_user),
        },
        "redis": redis,
        "positions": {
            "checkSeconds": watch.interval,
            "checks": watch.checks,
            "refills": watch.refills,
            "refilledEvents": watch.refilled,
            "heldEvents": gateway.delivery.positions.held_count(),
        },
    }


def admin_stats(gateway: Gateway, settings: Settings) -> dict[str, object]:
    """``GET /api/admin/stats``: this node's id, connections and subscribers per room."""
    stats = connection_stats(gateway.registry, gateway.sio.manager.rooms)
    return {"nodeId": node_id(settings), **msgspec.to_builtins(stats)}


async def node_sample(relay: Relay | None, gateway: Gateway, store: EventStore) -> NodeSample:
    """What ``/metrics`` reads at scrape time: the relay, the sockets, the outbox."""
    stats = connection_stats(gateway.registry, gateway.sio.manager.rooms)
    try:
        depth, oldest = await store.outbox_backlog()
        queued, dead = await store.reaction_backlog()
        backlog: dict[str, Any] = {
            "outbox_depth": depth,
            "outbox_oldest_seconds": oldest,
            "reactions_queued": queued,
            "dead_letters": dead,
        }
    except ServiceUnavailable:
        backlog = {"database_up": False}
    link = gateway.redis_status()
    return NodeSample(
        relay_enabled=relay is not None,
        relay_active=relay is not None and relay.stats.active,
        relay_published=relay.stats.published if relay else 0,
        relay_lag_seconds=relay.stats.last_lag_seconds if relay else 0.0,
        relay_unacked=relay.stats.unacked if relay else 0,
        relay_partitions=relay.stats.partitions if relay else (),
        relay_partition_count=relay.stats.partition_count if relay else 0,
        relay_live=relay.stats.live_relays if relay else 0,
        redis_up=None if link is None else bool(link["ok"]),
        socket_connections=stats.connections,
        socket_users=stats.users,
        rooms=stats.rooms,
        subscriptions=sum(stats.subscribers.values()),
        **backlog,
    )


@contextlib.asynccontextmanager
async def beating(presence: RedisPresence) -> AsyncIterator[None]:
    """The shared presence's heartbeat (gateway/redis_presence.py) while the node serves."""
    task = asyncio.create_task(presence.run(), name="presence-heartbeat")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await presence.close()


@dataclass(frozen=True, slots=True)
class SharedLimits:
    """The limits that hold for the whole cluster, and the Redis client they share."""

    app: AppLimits
    rest: Limiter | None
    """The REST limit per user; None: counted in this process (or off)."""
    redis: Any = None
    breaker: RedisBreaker | None = None
    """Whether the limits reach Redis now (for /health); None without Redis."""


def shared_limits(settings: Settings) -> SharedLimits:
    """The app-event and REST limits: in Redis with ``REDIS_URL``, else per process.
    The 100 client events a minute stay per connection (``gateway/limits.py``)."""
    if not settings.redis_url:
        return SharedLimits(app=AppLimits(), rest=None)
    redis = limits_client(settings.redis_url)
    breaker = RedisBreaker()  # one Redis: one verdict on whether it answers

    def limiter(limit: int, period: float, name: str, scope: str) -> RedisRateLimiter:
        return RedisRateLimiter(redis, limit, period, name=name, scope=scope, breaker=breaker)

    return SharedLimits(
        app=AppLimits(
            per_room=limiter(PER_ROOM[0], PER_ROOM[1], "app-room", PER_ROOM[2]),
            per_app=limiter(PER_APP[0], PER_APP[1], "app", PER_APP[2]),
        ),
        rest=limiter(settings.rest_rate_limit, 60, "rest-user", "requests")
        if settings.rest_rate_limit > 0
        else None,
        redis=redis,
        breaker=breaker,
    )


@contextlib.asynccontextmanager
async def publishing_stats(cluster: ClusterStats) -> AsyncIterator[None]:
    """This node's connection counts in Redis (gateway/cluster_stats.py) while it serves."""
    task = asyncio.create_task(cluster.run(), name="stats-publisher")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await cluster.close()


def build_app(settings: Settings, *, ready: Callable[[], None] | None = None) -> Any:
    """The ASGI app. ``ready`` is called once its services are open (tests await it)."""
    limits = shared_limits(settings)
    presence = (
        RedisPresence(settings.redis_url, node_id(settings), ttl=settings.presence_ttl_seconds)
        if settings.redis_url
        else None
    )
    origins = origin_policy(settings)
    gateway = Gateway(
        cors_origins=origins.socketio(),
        ping_interval=settings.ping_interval_seconds,
        ping_timeout=settings.ping_timeout_seconds,
        redis_url=settings.redis_url,
        max_message_bytes=settings.max_body_bytes,
        max_frame_bytes=settings.max_socket_frame_bytes,
        max_attachments=settings.max_socket_attachments,
        max_connections_per_user=settings.max_connections_per_user,
        max_subscriptions=settings.max_subscriptions_per_socket,
        subscribe_replay_max=settings.subscribe_replay_max,
        connect_timeout=settings.socket_connect_timeout_seconds,
        outbound_limit=settings.max_socket_buffer_bytes,
        overflow_grace=settings.slow_consumer_grace_seconds,
        poll_timeout=settings.socket_poll_timeout_seconds,
        events_per_minute=settings.socket_events_per_minute,
        typing_timeout=settings.typing_timeout_seconds,
        recent_per_room=settings.replay_cache_events,
        recent_total=settings.replay_cache_total,
        position_check_seconds=settings.position_check_seconds,
        presence=presence,
        recovery=settings.recovery,
        recent_bytes=settings.replay_cache_bytes,
    )

    cluster = ClusterStats(
        settings.redis_url,
        node_id(settings),
        lambda: connection_stats(gateway.registry, gateway.sio.manager.rooms),
        ttl=settings.stats_ttl_seconds,
    )

    @contextlib.asynccontextmanager
    async def services() -> AsyncIterator[Services]:
        async with contextlib.AsyncExitStack() as stack:
            dsn = await stack.enter_async_context(database(settings))
            stack.push_async_callback(gateway.close)  # last: after the relay has stopped
            if presence is not None:
                await stack.enter_async_context(beating(presence))
            await stack.enter_async_context(publishing_stats(cluster))
            if limits.redis is not None:
                stack.push_async_callback(limits.redis.aclose)
            pool = await connect(dsn, max_size=settings.db_pool_size)
            stack.push_async_callback(pool.close)
            await migrate(pool)
            await stack.enter_async_context(
                housekeeping(pool, ttl_seconds=settings.idempotency_ttl_seconds)
            )
            store = event_store(pool, settings)
            sources = Sources()
            signal = CommitSignal(pool)
            stack.push_async_callback(signal.close)
            notifications = NotificationService(store, sources, on_commit=signal)
            relay = None
            if settings.relay:
                relay = await stack.enter_async_context(
                    running_relay(
                        dsn,
                        gateway.publisher,
                        settings,
                        reactor=reactor(pool, notifications, settings),
                    )
                )
                signal.wake_locally(relay.wake, active=relay.holds_all)
            rooms = RoomService(store, on_commit=signal)
            revocations = await stack.enter_async_context(kept_revocations(pool, dsn, settings))
            # New connections and requests are refused by the verifier; open sockets
            # of a revoked token are ended by their sessions.
            jwks = await stack.enter_async_context(kept_jwks(settings))
            tokens = verifier(settings, revoked=revocations.is_revoked, jwks=jwks)
            stack.callback(revocations.subscribe(gateway.sessions.revoked))
            quiz = QuizService(rooms, QuizSecrets(pool), sources)
            await stack.enter_async_context(deadline_sweeper(quiz, sources.now))
            gateway.services = GatewayServices(
                store=store,
                rooms=rooms,
                verifier=tokens,
                quiz=quiz,
                notifications=notifications,
                recovery=RecoveryLog(pool) if settings.recovery else None,
            )
            await stack.enter_async_context(watching_positions(gateway))
            gateway.start()  # SSE streams hear other nodes' broadcasts before any socket
            if ready is not None:
                ready()
            yield Services(
                store=store,
                rooms=rooms,
                verifier=tokens,
                sources=sources,
                seeds=RoomSeeds(pool),
                quiz=quiz,
                notifications=notifications,
                app_limits=limits.app,
                status=lambda: node_status(relay, gateway, settings, limits.breaker),
                stats=lambda: admin_stats(gateway, settings),
                cluster_stats=cluster.view,
                metrics=Metrics(lambda: node_sample(relay, gateway, store)),
                revocations=revocations,
                feed=gateway.feed,
                stream_limits=StreamLimits(
                    heartbeat=settings.sse_heartbeat_seconds,
                    queue_events=settings.sse_queue_events,
                    write_timeout=settings.sse_write_timeout_seconds,
                ),
                directory=RoomDirectory(RoomDirectoryStore(pool)),
                issuer=token_issuer(settings, pool, revocations, sources),
            )

    app = create_app(
        open_services=services,
        max_body_bytes=settings.max_body_bytes,
        cors_origins=settings.cors_origins,
        cors_origin_regex=origins.regex,
        requests_per_minute=settings.rest_rate_limit,
        rest_limiter=limits.rest,
        fetch_unknown_keys=settings.jwks_url is not None,
    )
    return socketio.ASGIApp(gateway.sio, other_asgi_app=app, socketio_path="socket.io")
