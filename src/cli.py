"""The ``roomcast`` command: serve, gateway, migrate, relay, token, deadletter, audit.

Every failure a user can cause (bad configuration, unreachable database, bad
arguments) ends in one readable line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from roomcast import __version__, gctune
from roomcast.audit import cli as audit_cli
from roomcast.config import ConfigError, Settings, load_settings, resolve_jwt_secret
from roomcast.domain.errors import ServiceUnavailable
from roomcast.logconfig import configure_logging
from roomcast.outbox.database import Migration, SchemaMismatch
from roomcast.outbox.embedded import EmbeddedPostgresError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roomcast", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"roomcast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the API (REST) on uvicorn")
    serve.add_argument("--host", help="interface to bind (ROOMCAST_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (ROOMCAST_PORT, default 8000)")

    gateway = sub.add_parser(
        "gateway",
        help="run the API and the Socket.IO gateway without a relay; needs REDIS_URL, "
        "through which `roomcast relay` processes publish to it",
        description="`roomcast serve` without its relay (as with ROOMCAST_RELAY=false): the "
        "node of a cluster that serves clients, behind a load balancer, while separate "
        "`roomcast relay` processes publish the outbox to every gateway through Redis "
        "(docs/deployment.md).",
    )
    gateway.add_argument("--host", help="interface to bind (ROOMCAST_HOST, default 127.0.0.1)")
    gateway.add_argument("--port", type=int, help="port (ROOMCAST_PORT, default 8000)")

    migrate = sub.add_parser(
        "migrate",
        help="bring the database's schema to this version (a new one from schema.sql)",
        description="Creates a new database from schema.sql, or applies to an existing one "
        "the numbered migrations it has not had, in order, under a lock (docs/operations.md "
        '"Schema and migrations"). Refuses, changing nothing (exit 1), a database newer than '
        "this roomcast or one whose applied migrations were changed since.",
    )
    migrate.add_argument(
        "--check",
        action="store_true",
        help="change nothing: print the database's schema version and what would be applied "
        "(exit 1 where migrate would refuse)",
    )

    sub.add_parser(
        "relay",
        help="publish the outbox to the gateways through Redis (REDIS_URL); "
        "several share the rooms' partitions and take over a dead one's",
    )

    token = sub.add_parser(
        "token",
        help="mint a development token (default), or revoke one by jti",
        description="`roomcast token --sub ID …` mints a user's development token with the "
        "configured secret, `roomcast token --app ID --permission P` an app's; "
        "`roomcast token revoke --jti JTI` revokes any token by its id on every node "
        "(it writes to the database).",
    )
    token.add_argument("action", nargs="?", choices=["mint", "revoke"], default="mint")
    token.add_argument("--sub", help="mint: the user id (JWT subject); required unless --app")
    token.add_argument("--app", help="mint an app token for this app id (subject app:<id>)")
    token.add_argument(
        "--permission",
        action="append",
        default=[],
        help="a permission of the app token, e.g. realtime:publish (repeatable)",
    )
    token.add_argument("--name", help="display name (default: the user id)")
    token.add_argument("--ttl", type=int, help="lifetime in seconds (ROOMCAST_TOKEN_TTL)")
    token.add_argument(
        "--role",
        action="append",
        default=[],
        help="put this role in the token's roles claim (repeatable); admin opens /api/admin/*",
    )
    token.add_argument("--jti", help="revoke: the token id (its jti claim), required")
    token.add_argument(
        "--expires-at",
        type=int,
        help="revoke: the token's exp (Unix seconds), if known; the revocation is kept "
        "until then (default: ROOMCAST_REVOCATION_RETENTION from now)",
    )

    deadletter = sub.add_parser(
        "deadletter",
        help="list, retry or drop reactions that failed every attempt",
        description="Reactions (e.g. a winner's notification) that failed "
        "ROOMCAST_REACTION_ATTEMPTS times wait in the dead letters. `list` prints one JSON "
        "object per line; `retry ID…` puts them back in the reaction queue (due now, attempts "
        "reset); `drop ID…` forgets them (their reaction never runs). IDs are the globalId "
        "of `list`; --all takes every dead letter.",
    )
    deadletter.add_argument("action", choices=["list", "retry", "drop"])
    deadletter.add_argument("ids", nargs="*", type=int, metavar="ID", help="globalId from list")
    deadletter.add_argument("--all", action="store_true", help="retry or drop every dead letter")

    audit = sub.add_parser(
        "audit",
        help="read, follow and verify the event log (reads PostgreSQL directly)",
        description="Read, follow and verify the event log: the hash chain and every draw "
        "(docs/audit.md). Uses DATABASE_URL, or the embedded database of ROOMCAST_DATA_DIR.",
    )
    audit_cli.configure(audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides = {"host": getattr(args, "host", None), "port": getattr(args, "port", None)}
        settings = load_settings(**overrides)
        match args.command:
            case "serve":
                return _serve(settings)
            case "gateway":
                return _gateway(settings)
            case "migrate":
                return asyncio.run(_migrate(settings, dry_run=args.check))
            case "relay":
                return asyncio.run(_relay(settings))
            case "token" if args.action == "revoke":
                if not args.jti:
                    print("roomcast: token revoke needs --jti", file=sys.stderr)
                    return 2
                return asyncio.run(_revoke(settings, args.jti, args.expires_at))
            case "token":
                return _token(settings, args)
            case "deadletter":
                return asyncio.run(_deadletter(settings, args))
            case "audit":
                return audit_cli.run(args, settings)
    except ConfigError as exc:
        print(f"roomcast: configuration error: {exc}", file=sys.stderr)
        return 2
    except ServiceUnavailable as exc:
        print(f"roomcast: {exc.message}", file=sys.stderr)
        return 1
    except SchemaMismatch as exc:
        print(f"roomcast: cannot migrate the database: {exc}", file=sys.stderr)
        return 1
    except EmbeddedPostgresError as exc:
        print(f"roomcast: cannot start the embedded PostgreSQL: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2  # pragma: no cover - argparse enforces a known command


def _serve(settings: Settings) -> int:
    import uvicorn

    from roomcast.bootstrap import build_app

    if settings.database_url:
        # Fail with one line now rather than a start-up traceback from the lifespan:
        # an unreachable database, or a schema this version cannot migrate.
        asyncio.run(_reachable(settings.database_url))

    configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        production=settings.env == "production",
        per_loop_turn=True,
    )
    gctune.tune(settings.gc_threshold)
    app = build_app(settings, ready=gctune.freeze_startup)
    uvicorn.run(app, host=settings.host, port=settings.port, **uvicorn_options(settings))
    return 0


def _gateway(settings: Settings) -> int:
    if not settings.redis_url:
        print(
            "roomcast: `roomcast gateway` needs REDIS_URL to hear the relays; "
            "a single node runs `roomcast serve` (API, gateway and relay)",
            file=sys.stderr,
        )
        return 2
    return _serve(msgspec.structs.replace(settings, relay=False))


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How ``roomcast serve`` runs uvicorn (the tests' server runs with the same)."""
    from roomcast.http.uvicorn_protocol import with_limits
    from roomcast.http.uvicorn_ws import LeanWebSocketProtocol

    return {
        # httptools, the request head bounded (refusals in the JSON envelope)
        "http": with_limits(
            max_headers=settings.max_request_headers,
            max_head_bytes=settings.max_request_head_bytes,
        ),
        "log_config": None,  # uvicorn's loggers go through our structlog handler
        "access_log": False,  # the request_finished line carries the request id instead
        "server_header": False,  # nothing advertised; one header less to check and write
        # Nothing in roomcast reads the client's address (limits key on the token's
        # user), so X-Forwarded-For is not rewritten into every request's scope.
        "proxy_headers": False,
        # websockets' sans-I/O protocol (uvicorn's "auto"), its idle queue a lean one
        "ws": LeanWebSocketProtocol,
        "ws_ping_interval": settings.ping_interval_seconds,
        "ws_ping_timeout": settings.ping_timeout_seconds,
        # A frame the Socket.IO server would refuse anyway is not buffered whole.
        "ws_max_size": settings.max_socket_frame_bytes,
        "ws_per_message_deflate": settings.ws_compression,
        # An SSE stream never ends by itself: without a bound, shutdown would wait for
        # its reader to go away.
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }


async def _reachable(dsn: str) -> None:
    """The database answers, and its schema is one ``migrate`` can bring to this version."""
    from roomcast.outbox.database import check, connect

    pool = await connect(dsn, min_size=1, max_size=1)
    try:
        await check(pool)
    finally:
        await pool.close()


async def _migrate(settings: Settings, *, dry_run: bool) -> int:
    from roomcast.bootstrap import database
    from roomcast.outbox.database import check, connect, migrate, migrations

    # What ran is logged too (schema_migrated), on stderr like serve's lines.
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, production=settings.env == "production"
    )
    async with database(settings) as dsn:
        pool = await connect(dsn, min_size=1, max_size=1)
        try:
            if dry_run:
                print(_to_apply(await check(pool), migrations()))
                return 0
            done = await migrate(pool)
        finally:
            await pool.close()
    if done.created:
        print(f"roomcast: created the schema at version {done.current}")
    elif done.applied:
        print(
            f"roomcast: migrated the schema from version {done.previous} to {done.current} "
            f"({', '.join(done.applied)})"
        )
    else:
        print(f"roomcast: schema is up to date (version {done.current})")
    return 0


def _to_apply(version: int, shipped: tuple[Migration, ...]) -> str:
    if version == 0:
        todo = f"a new database: migrate creates it at version {len(shipped)}"
    elif version == len(shipped):
        todo = "up to date"
    else:
        todo = "migrate applies " + ", ".join(m.label for m in shipped[version:])
    return f"roomcast: schema version {version} of {len(shipped)}: {todo}"


async def _relay(settings: Settings) -> int:
    from roomcast.bootstrap import database, reacting_relay, redis_publisher

    if not settings.redis_url:
        print(
            "roomcast: `roomcast relay` needs REDIS_URL to reach the gateways; "
            "without Redis the relay runs inside `roomcast serve`",
            file=sys.stderr,
        )
        return 2
    configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        production=settings.env == "production",
        per_loop_turn=True,
    )
    gctune.tune(settings.gc_threshold)
    async with (
        database(settings) as dsn,
        reacting_relay(dsn, redis_publisher(settings.redis_url), settings) as relay,
    ):
        gctune.freeze_startup()
        await relay.wait_forever()
    return 0


async def _revoke(settings: Settings, jti: str, expires_at: int | None) -> int:
    from datetime import UTC, datetime, timedelta

    from roomcast.bootstrap import database
    from roomcast.outbox.database import connect, migrate
    from roomcast.outbox.revocations import revoke_token

    until = (
        datetime.fromtimestamp(expires_at, UTC)
        if expires_at is not None
        else datetime.now(UTC) + timedelta(seconds=settings.revocation_retention_seconds)
    )
    async with database(settings) as dsn:
        pool = await connect(dsn, min_size=1, max_size=1)
        try:
            await migrate(pool)  # idempotent: the table exists even before a first serve
            await revoke_token(pool, jti, expires_at=until, revoked_by="roomcast-cli")
        finally:
            await pool.close()
    print(f"roomcast: token {jti} revoked (kept until {until.isoformat()})")
    return 0


async def _deadletter(settings: Settings, args: argparse.Namespace) -> int:
    import msgspec

    from roomcast.bootstrap import database
    from roomcast.outbox.database import connect, migrate
    from roomcast.outbox.reaction_queue import ReactionQueue

    if args.action == "list" and (args.ids or args.all):
        print("roomcast: deadletter list takes no ids", file=sys.stderr)
        return 2
    if args.action != "list" and not args.ids and not args.all:
        print(f"roomcast: deadletter {args.action} needs ids or --all", file=sys.stderr)
        return 2
    async with database(settings) as dsn:
        pool = await connect(dsn, min_size=1, max_size=1)
        try:
            await migrate(pool)  # idempotent: the tables exist even before a first serve
            queue = ReactionQueue(pool)
            if args.action == "list":
                for letter in await queue.dead_letters(limit=100_000):
                    print(msgspec.json.encode(letter).decode())
                return 0
            ids = list(args.ids) or [d.global_id for d in await queue.dead_letters(limit=100_000)]
            moved = await (queue.retry if args.action == "retry" else queue.drop)(ids)
        finally:
            await pool.close()
    done = "queued again" if args.action == "retry" else "dropped"
    print(f"roomcast: {len(moved)} dead letter(s) {done}")
    missing = sorted(set(ids) - set(moved))
    if missing:
        print(f"roomcast: not dead letters: {' '.join(map(str, missing))}", file=sys.stderr)
        return 1
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from roomcast.tokens import mint

    extra: dict[str, object] = {}
    if args.app:
        extra = {"app": args.app, "permissions": list(args.permission)}
        sub = args.sub or f"app:{args.app}"
    elif args.permission:
        print("roomcast: --permission is for app tokens (--app)", file=sys.stderr)
        return 2
    elif args.sub:
        sub = args.sub
    else:
        print("roomcast: token needs --sub (a user) or --app (an app)", file=sys.stderr)
        return 2

    if args.role:
        extra["roles"] = list(args.role)
    secret = resolve_jwt_secret(settings)
    if secret is None:
        print(
            "roomcast: tokens can only be minted with an HS256 secret (ROOMCAST_JWT_SECRET)",
            file=sys.stderr,
        )
        return 2
    print(
        mint(
            secret=secret,
            sub=sub,
            name=args.name or args.app,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=args.ttl or settings.token_ttl_seconds,
            extra=extra,
        )
    )
    return 0
