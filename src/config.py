"""Settings: read once from the environment into a typed, immutable object.

Only ``cli`` and ``bootstrap`` call ``load_settings``; everything else receives the
``Settings`` (or just the values it needs) as arguments. The table of variables
in docs/operations.md is checked against ``ENVIRONMENT`` by a test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

import msgspec

__all__ = [
    "ENVIRONMENT",
    "ConfigError",
    "Environment",
    "Settings",
    "issuer_enabled",
    "load_settings",
    "resolve_jwt_secret",
]


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigError(Exception):
    """The environment does not describe a service that can start; the message says why."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    env: Environment = Environment.DEVELOPMENT
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".roomcast")
    host: str = "127.0.0.1"
    port: int = msgspec.field(default=8000)
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_issuer: str = "roomcast"
    jwt_audience: str = "roomcast"
    token_ttl_seconds: int = 12 * 3600
    jwks_url: str | None = None
    """The identity provider's JWKS (RS256/ES256 keys by ``kid``), for production."""
    jwks_refresh_seconds: float = 300.0
    """How often the JWKS is fetched again; an unknown ``kid`` fetches it sooner."""
    jwks_cooldown_seconds: float = 10.0
    """The least time between two fetches caused by unknown ``kid``s (a flood of
    made-up kids costs the identity provider one request per cooldown)."""
    token_issuer: bool | None = None
    """The built-in issuer (``POST /api/auth/token``, ``/api/auth/refresh``). None: on in
    development, off in production (there it also needs ``signin_passcode``)."""
    signin_passcode: str | None = None
    """When set, ``POST /api/auth/token`` needs ``passcode`` equal to it."""
    access_token_ttl_seconds: int = 900
    """Lifetime of access tokens from the built-in issuer."""
    refresh_token_ttl_seconds: int = 30 * 86400
    """Lifetime of each refresh token (every refresh makes a new one)."""
    log_level: str = "info"
    log_format: str = "auto"
    max_body_bytes: int = 64 * 1024
    db_pool_size: int = 10
    snapshot_every: int = 100
    append_batch: int = 16
    """Most commands written in one transaction (group commit across streams); 1: one each."""
    relay: bool = True
    """Run the outbox relay inside ``roomcast serve`` (one publishes at a time)."""
    recovery: bool = True
    """Socket.IO connection state recovery from the log (docs/decisions/0009):
    pids, offsets on delivered events, sessions in PostgreSQL."""
    relay_poll_seconds: float = 0.25
    relay_partitions: int = 16
    """Rooms are split into this many partitions, each published by one relay at a
    time (docs/decisions/0022-relay-partitions.md); the same on every relay of a
    database. 1: one relay publishes everything, the others stand by."""
    relay_rebalance_seconds: float = 1.0
    """How often each relay looks at the others and gives back or takes partitions:
    a dead relay's partitions are taken within about this long of its session ending."""
    position_check_seconds: float = 0.5
    reaction_attempts: int = 5
    presence_ttl_seconds: float = 15.0
    """With Redis: a node that stops refreshing its presence heartbeat (it crashed)
    drops out of every room's online list after this long."""
    stats_ttl_seconds: float = 10.0
    """With Redis: each node publishes its connection counts every third of this; a
    node that stops (it crashed) drops out of the admin stats after this long."""
    """Tries of a reaction (e.g. a winner's notification) before it is dead-lettered."""
    """How often each gateway node compares what it delivered with the log's heads
    (gateway/roomwatch.py): a lost broadcast is repaired within two of these."""
    idempotency_ttl_seconds: int = 24 * 3600
    """How long an Idempotency-Key answers retries; older keys are deleted."""
    cors_origins: tuple[str, ...] = ()
    ping_interval_seconds: int = 25
    ping_timeout_seconds: int = 20
    rest_rate_limit: int = 600
    """REST requests per user per minute; 0 switches the limit off."""
    node_id: str | None = None
    """How this node names itself in /health and admin stats (default: host-pid)."""
    revocation_refresh_seconds: float = 30.0
    """How often each node reloads revoked tokens (the fallback for a lost NOTIFY)."""
    revocation_retention_seconds: int = 30 * 86400
    """How long a revocation is kept when the token's exp is unknown (admin, CLI)."""
    socket_events_per_minute: int = 100
    """Client events one Socket.IO connection may send per minute (RATE_LIMIT_EXCEEDED)."""
    max_socket_frame_bytes: int = 1024 * 1024
    """A socket message over this ends the connection; up to it, over max_body_bytes is
    refused with PAYLOAD_TOO_LARGE."""
    max_request_headers: int = 100
    """Header fields one HTTP request may carry; more is PAYLOAD_TOO_LARGE."""
    max_request_head_bytes: int = 16 * 1024
    """Bytes of a request's line and headers (Node's default); more is PAYLOAD_TOO_LARGE."""
    socket_connect_timeout_seconds: float = 45.0
    """An Engine.IO session that sends no Socket.IO CONNECT within this is closed
    (Node's server: ``connectTimeout``, 45 s)."""
    max_socket_buffer_bytes: int = 8 * 1024 * 1024
    """Unsent output one Socket.IO connection may have waiting; more ends it (SLOW_CONSUMER)."""
    slow_consumer_grace_seconds: float = 5.0
    """How long a connection ended as a slow consumer has to read its notice before its
    TCP connection is aborted (its polling session forgotten)."""
    socket_poll_timeout_seconds: float = 45.0
    """A long-polling session with no GET in flight for this long is ended (a client
    always keeps one waiting; engine.io's own wait on a GET is ping interval + timeout)."""
    max_connections_per_user: int = 16
    """Socket.IO connections one user (token subject) may hold on one node."""
    max_subscriptions_per_socket: int = 100
    """Rooms one Socket.IO connection may be subscribed to at once."""
    subscribe_replay_max: int = 10_000
    """Seqs one ``room:subscribe`` replays inline; the rest the client pages with
    ``room:replay`` (docs/decisions/0019); 0: no cap."""
    max_socket_attachments: int = 10
    """Binary attachments one Socket.IO packet may announce; more closes the connection."""
    typing_timeout_seconds: float = 5.0
    """A typing indicator stops by itself after this long without ``typing:start``."""
    replay_cache_events: int = 10_000
    """Latest events kept in memory per room for replays (gateway/history.py); 0: none."""
    replay_cache_total: int = 100_000
    """Latest events kept in memory for replays, all rooms together (~0.5 KB each)."""
    replay_cache_bytes: int = 64 * 1024 * 1024
    """Payload bytes kept in memory for replays, all rooms together; 0: none."""
    sse_heartbeat_seconds: float = 15.0
    """An idle SSE stream gets a comment line this often (proxies close silent streams)."""
    sse_queue_events: int = 1000
    """Live events one SSE stream may have waiting for its reader; past it the stream is
    cut off with a typed error (the reader resumes with Last-Event-ID)."""
    sse_write_timeout_seconds: float = 30.0
    """How long one write to an SSE reader may wait for it before the stream is closed."""
    shutdown_grace_seconds: float = 10.0
    """At shutdown, how long uvicorn waits for open requests (SSE streams) to end."""
    gc_threshold: int = 50_000
    """The garbage collector's first-generation threshold under ``serve`` and
    ``relay`` (roomcast/gctune.py); 0 keeps CPython's default (700)."""
    ws_compression: bool = False
    """Offer WebSocket permessage-deflate. Off, as in Socket.IO's own server since
    engine.io 4: zlib per message per socket costs more CPU and memory than a
    realtime feed of small JSON events saves in bytes."""


ENVIRONMENT: Mapping[str, str] = {
    "ROOMCAST_ENV": "env",
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
    "ROOMCAST_DATA_DIR": "data_dir",
    "ROOMCAST_HOST": "host",
    "ROOMCAST_PORT": "port",
    "ROOMCAST_JWT_SECRET": "jwt_secret",
    "ROOMCAST_JWT_PUBLIC_KEY": "jwt_public_key",
    "ROOMCAST_JWT_ISSUER": "jwt_issuer",
    "ROOMCAST_JWT_AUDIENCE": "jwt_audience",
    "ROOMCAST_TOKEN_TTL": "token_ttl_seconds",
    "ROOMCAST_JWKS_URL": "jwks_url",
    "ROOMCAST_JWKS_REFRESH": "jwks_refresh_seconds",
    "ROOMCAST_JWKS_COOLDOWN": "jwks_cooldown_seconds",
    "ROOMCAST_TOKEN_ISSUER": "token_issuer",
    "ROOMCAST_SIGNIN_PASSCODE": "signin_passcode",
    "ROOMCAST_ACCESS_TOKEN_TTL": "access_token_ttl_seconds",
    "ROOMCAST_REFRESH_TOKEN_TTL": "refresh_token_ttl_seconds",
    "ROOMCAST_LOG_LEVEL": "log_level",
    "ROOMCAST_LOG_FORMAT": "log_format",
    "ROOMCAST_MAX_BODY_BYTES": "max_body_bytes",
    "ROOMCAST_DB_POOL_SIZE": "db_pool_size",
    "ROOMCAST_SNAPSHOT_EVERY": "snapshot_every",
    "ROOMCAST_APPEND_BATCH": "append_batch",
    "ROOMCAST_RELAY": "relay",
    "ROOMCAST_RECOVERY": "recovery",
    "ROOMCAST_RELAY_POLL": "relay_poll_seconds",
    "ROOMCAST_RELAY_PARTITIONS": "relay_partitions",
    "ROOMCAST_RELAY_REBALANCE": "relay_rebalance_seconds",
    "ROOMCAST_POSITION_CHECK": "position_check_seconds",
    "ROOMCAST_REACTION_ATTEMPTS": "reaction_attempts",
    "ROOMCAST_PRESENCE_TTL": "presence_ttl_seconds",
    "ROOMCAST_STATS_TTL": "stats_ttl_seconds",
    "ROOMCAST_IDEMPOTENCY_TTL": "idempotency_ttl_seconds",
    "ROOMCAST_CORS_ORIGINS": "cors_origins",
    "ROOMCAST_PING_INTERVAL": "ping_interval_seconds",
    "ROOMCAST_PING_TIMEOUT": "ping_timeout_seconds",
    "ROOMCAST_REST_RATE_LIMIT": "rest_rate_limit",
    "ROOMCAST_NODE_ID": "node_id",
    "ROOMCAST_REVOCATION_REFRESH": "revocation_refresh_seconds",
    "ROOMCAST_REVOCATION_RETENTION": "revocation_retention_seconds",
    "ROOMCAST_SOCKET_EVENTS_PER_MINUTE": "socket_events_per_minute",
    "ROOMCAST_MAX_SOCKET_FRAME_BYTES": "max_socket_frame_bytes",
    "ROOMCAST_TYPING_TIMEOUT": "typing_timeout_seconds",
    "ROOMCAST_SOCKET_CONNECT_TIMEOUT": "socket_connect_timeout_seconds",
    "ROOMCAST_MAX_REQUEST_HEADERS": "max_request_headers",
    "ROOMCAST_MAX_REQUEST_HEAD_BYTES": "max_request_head_bytes",
    "ROOMCAST_MAX_SOCKET_ATTACHMENTS": "max_socket_attachments",
    "ROOMCAST_MAX_SOCKET_BUFFER_BYTES": "max_socket_buffer_bytes",
    "ROOMCAST_SLOW_CONSUMER_GRACE": "slow_consumer_grace_seconds",
    "ROOMCAST_SOCKET_POLL_TIMEOUT": "socket_poll_timeout_seconds",
    "ROOMCAST_MAX_CONNECTIONS_PER_USER": "max_connections_per_user",
    "ROOMCAST_MAX_SUBSCRIPTIONS_PER_SOCKET": "max_subscriptions_per_socket",
    "ROOMCAST_SUBSCRIBE_REPLAY_MAX": "subscribe_replay_max",
    "ROOMCAST_WS_COMPRESSION": "ws_compression",
    "ROOMCAST_GC_THRESHOLD": "gc_threshold",
    "ROOMCAST_SSE_HEARTBEAT": "sse_heartbeat_seconds",
    "ROOMCAST_SSE_QUEUE_EVENTS": "sse_queue_events",
    "ROOMCAST_SSE_WRITE_TIMEOUT": "sse_write_timeout_seconds",
    "ROOMCAST_SHUTDOWN_GRACE": "shutdown_grace_seconds",
    "ROOMCAST_REPLAY_CACHE_EVENTS": "replay_cache_events",
    "ROOMCAST_REPLAY_CACHE_TOTAL": "replay_cache_total",
    "ROOMCAST_REPLAY_CACHE_BYTES": "replay_cache_bytes",
}
"""Environment variable → Settings field."""


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ``environ`` (default ``os.environ``), then ``overrides`` (CLI flags).

    Raises ``ConfigError`` naming the variable when a value has the wrong type,
    or when production lacks what it must not run without.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for variable, field in ENVIRONMENT.items():
        value = environ.get(variable)
        if value is None or value == "":
            continue
        if field == "cors_origins":
            raw[field] = [o.strip() for o in value.split(",") if o.strip()]
        elif field == "data_dir":
            raw[field] = Path(value)  # msgspec.convert does not build a Path from a str
        else:
            raw[field] = value
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        field = str(exc).rsplit("$.", 1)[-1].rstrip("`")
        names = [v for v, f in ENVIRONMENT.items() if f == field]
        raise ConfigError(f"{names[0] if names else field}: {exc}") from None
    if settings.env is Environment.PRODUCTION:
        if not settings.database_url:
            raise ConfigError("ROOMCAST_ENV=production needs DATABASE_URL (no embedded database)")
        if not (settings.jwt_secret or settings.jwt_public_key or settings.jwks_url):
            raise ConfigError(
                "ROOMCAST_ENV=production needs ROOMCAST_JWT_SECRET, ROOMCAST_JWT_PUBLIC_KEY"
                " or ROOMCAST_JWKS_URL"
            )
        if settings.token_issuer and not settings.signin_passcode:
            raise ConfigError(
                "ROOMCAST_TOKEN_ISSUER=true in production needs ROOMCAST_SIGNIN_PASSCODE"
            )
        if settings.token_issuer and not settings.jwt_secret:
            raise ConfigError(
                "ROOMCAST_TOKEN_ISSUER=true in production needs ROOMCAST_JWT_SECRET to sign with"
            )
    if settings.token_issuer and settings.jwt_public_key:
        raise ConfigError(
            "ROOMCAST_TOKEN_ISSUER=true cannot be combined with ROOMCAST_JWT_PUBLIC_KEY:"
            " only RS256 tokens are accepted then, and the issuer signs HS256"
        )
    if settings.token_issuer and settings.jwks_url:
        raise ConfigError(
            "ROOMCAST_TOKEN_ISSUER=true cannot be combined with ROOMCAST_JWKS_URL: names"
            " signed in here could collide with the identity provider's subjects"
        )
    if settings.jwks_refresh_seconds <= 0 or settings.jwks_cooldown_seconds < 0:
        raise ConfigError(
            "ROOMCAST_JWKS_REFRESH must be positive and ROOMCAST_JWKS_COOLDOWN not negative"
        )
    if settings.jwks_url and not settings.jwks_url.startswith(("https://", "http://")):
        raise ConfigError("ROOMCAST_JWKS_URL must be an http(s) URL")
    positive = {
        "ROOMCAST_PORT": settings.port,
        "ROOMCAST_DB_POOL_SIZE": settings.db_pool_size,
        "ROOMCAST_SNAPSHOT_EVERY": settings.snapshot_every,
        "ROOMCAST_APPEND_BATCH": settings.append_batch,
        "ROOMCAST_MAX_BODY_BYTES": settings.max_body_bytes,
        "ROOMCAST_PING_INTERVAL": settings.ping_interval_seconds,
        "ROOMCAST_PING_TIMEOUT": settings.ping_timeout_seconds,
        "ROOMCAST_IDEMPOTENCY_TTL": settings.idempotency_ttl_seconds,
        "ROOMCAST_REVOCATION_RETENTION": settings.revocation_retention_seconds,
        "ROOMCAST_SOCKET_EVENTS_PER_MINUTE": settings.socket_events_per_minute,
        "ROOMCAST_MAX_SOCKET_FRAME_BYTES": settings.max_socket_frame_bytes,
        "ROOMCAST_SOCKET_CONNECT_TIMEOUT": settings.socket_connect_timeout_seconds,
        "ROOMCAST_MAX_REQUEST_HEADERS": settings.max_request_headers,
        "ROOMCAST_MAX_REQUEST_HEAD_BYTES": settings.max_request_head_bytes,
        "ROOMCAST_MAX_SOCKET_ATTACHMENTS": settings.max_socket_attachments,
        "ROOMCAST_REACTION_ATTEMPTS": settings.reaction_attempts,
        "ROOMCAST_RELAY_PARTITIONS": settings.relay_partitions,
        "ROOMCAST_ACCESS_TOKEN_TTL": settings.access_token_ttl_seconds,
        "ROOMCAST_REFRESH_TOKEN_TTL": settings.refresh_token_ttl_seconds,
        "ROOMCAST_MAX_SOCKET_BUFFER_BYTES": settings.max_socket_buffer_bytes,
        "ROOMCAST_MAX_CONNECTIONS_PER_USER": settings.max_connections_per_user,
        "ROOMCAST_MAX_SUBSCRIPTIONS_PER_SOCKET": settings.max_subscriptions_per_socket,
    }
    for variable, number in positive.items():
        if number < 1:
            raise ConfigError(f"{variable} must be positive")
    if settings.relay_partitions > 1024:
        # One lock, and one /metrics series, per partition.
        raise ConfigError("ROOMCAST_RELAY_PARTITIONS must be at most 1024")
    if settings.relay_rebalance_seconds <= 0:
        raise ConfigError("ROOMCAST_RELAY_REBALANCE must be positive")
    if settings.revocation_refresh_seconds <= 0:
        raise ConfigError("ROOMCAST_REVOCATION_REFRESH must be positive")
    for variable, seconds in (
        ("ROOMCAST_SLOW_CONSUMER_GRACE", settings.slow_consumer_grace_seconds),
        ("ROOMCAST_SOCKET_POLL_TIMEOUT", settings.socket_poll_timeout_seconds),
    ):
        if seconds <= 0:
            raise ConfigError(f"{variable} must be positive")
    if settings.rest_rate_limit < 0:
        raise ConfigError("ROOMCAST_REST_RATE_LIMIT must be 0 (off) or positive")
    for variable, number in (
        ("ROOMCAST_REPLAY_CACHE_EVENTS", settings.replay_cache_events),
        ("ROOMCAST_REPLAY_CACHE_TOTAL", settings.replay_cache_total),
        ("ROOMCAST_REPLAY_CACHE_BYTES", settings.replay_cache_bytes),
        ("ROOMCAST_SUBSCRIBE_REPLAY_MAX", settings.subscribe_replay_max),
    ):
        if number < 0:
            raise ConfigError(f"{variable} must be 0 (off) or positive")
    if settings.gc_threshold < 0:
        raise ConfigError("ROOMCAST_GC_THRESHOLD must be 0 (CPython's default) or positive")
    for variable, seconds in (
        ("ROOMCAST_TYPING_TIMEOUT", settings.typing_timeout_seconds),
        ("ROOMCAST_POSITION_CHECK", settings.position_check_seconds),
        ("ROOMCAST_PRESENCE_TTL", settings.presence_ttl_seconds),
        ("ROOMCAST_STATS_TTL", settings.stats_ttl_seconds),
        ("ROOMCAST_SSE_HEARTBEAT", settings.sse_heartbeat_seconds),
        ("ROOMCAST_SSE_WRITE_TIMEOUT", settings.sse_write_timeout_seconds),
        ("ROOMCAST_SHUTDOWN_GRACE", settings.shutdown_grace_seconds),
    ):
        if seconds <= 0:
            raise ConfigError(f"{variable} must be positive")
    if settings.sse_queue_events < 1:
        raise ConfigError("ROOMCAST_SSE_QUEUE_EVENTS must be positive")
    if settings.max_socket_frame_bytes < settings.max_body_bytes:
        raise ConfigError(
            "ROOMCAST_MAX_SOCKET_FRAME_BYTES must be at least ROOMCAST_MAX_BODY_BYTES"
        )
    return settings


def issuer_enabled(settings: Settings) -> bool:
    """Whether the built-in token issuer answers: ``ROOMCAST_TOKEN_ISSUER``, else on in
    development only."""
    if settings.token_issuer is not None:
        return settings.token_issuer
    return settings.env is Environment.DEVELOPMENT


def resolve_jwt_secret(settings: Settings) -> str | None:
    """The HS256 secret: configured, else (development only) kept in the data dir.

    The first run generates it, so ``roomcast serve`` and ``roomcast token`` agree
    with no configuration at all.
    """
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.jwt_public_key or settings.jwks_url or settings.env is Environment.PRODUCTION:
        return None
    path = settings.data_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting together must not end up with two secrets.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return secret
