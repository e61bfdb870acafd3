"""``create_app``: the Litestar application, given the services it serves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from roomcast import __version__
from roomcast.domain.errors import AuthenticationFailed, NotFound
from roomcast.domain.state import UserRef
from roomcast.http.admin_rooms import admin_rooms
from roomcast.http.app_events import AppLimits
from roomcast.http.auth import claims_from, principal_of, require_admin
from roomcast.http.chain import room_chain
from roomcast.http.commands import CommandContext
from roomcast.http.deps import Claimed
from roomcast.http.draws import DrawController
from roomcast.http.edge import EdgeGuard
from roomcast.http.errors import EXCEPTION_HANDLERS
from roomcast.http.headers import header
from roomcast.http.health import health
from roomcast.http.middleware import RequestContext
from roomcast.http.notifications import NotificationController
from roomcast.http.openapi import render_plugins
from roomcast.http.operations import admin_stats, metrics
from roomcast.http.participants import ParticipantController
from roomcast.http.prizes import PrizeController
from roomcast.http.quiz import QuizController
from roomcast.http.requests import BodyRequest
from roomcast.http.revocation import revoke
from roomcast.http.rooms import RoomController
from roomcast.http.signin import refresh, sign_in
from roomcast.http.sse import ROUTES as STREAM_ROUTES
from roomcast.http.sse import StreamLimits, StreamServices
from roomcast.http.web import web_routes
from roomcast.metrics import Metrics
from roomcast.outbox.revocations import Revocations
from roomcast.outbox.store import EventStore
from roomcast.service.auth import TokenIssuer
from roomcast.service.directory import RoomDirectory
from roomcast.service.draws import RoomSeeds
from roomcast.service.feed import LiveFeed
from roomcast.service.notifications import NotificationService
from roomcast.service.quiz import QuizService
from roomcast.service.ratelimit import Limiter, RateLimiter
from roomcast.service.rooms import RoomService
from roomcast.service.sources import Sources
from roomcast.tokens import Claims, TokenVerifier

__all__ = ["Services", "create_app"]

_COUNTED = "roomcast.counted_claims"
"""Scope key of the claims ``before_request`` verified and counted for this request."""


@dataclass(frozen=True, slots=True)
class Services:
    """What the REST edge needs; opened and closed around the app's lifetime."""

    store: EventStore
    rooms: RoomService
    verifier: TokenVerifier
    sources: Sources
    seeds: RoomSeeds
    quiz: QuizService
    notifications: NotificationService
    app_limits: AppLimits
    status: Callable[[], Mapping[str, object]] = dict
    """This node's realtime side (relay, sockets) for /health; JSON-ready."""
    stats: Callable[[], Mapping[str, object]] = dict
    """This node's id, connections and subscribers per room (admin stats); JSON-ready."""
    cluster_stats: Callable[[], Awaitable[Mapping[str, object]]] | None = None
    """Every node's counts (admin stats' ``cluster``); None: not part of the answer."""
    metrics: Metrics | None = None
    """This node's Prometheus metrics; None: /metrics is 404."""
    revocations: Revocations | None = None
    """Revoked tokens; None: /api/auth/revoke is 404."""
    feed: LiveFeed | None = None
    """This node's live room events (the gateway's delivery); None: the SSE routes are 404."""
    stream_limits: StreamLimits = StreamLimits()  # noqa: RUF009 - frozen, shared on purpose
    directory: RoomDirectory | None = None
    """Who organizes or takes part in which room; None: GET /api/rooms is 404."""
    issuer: TokenIssuer | None = None
    """The built-in token issuer; None (off): /api/auth/token and /refresh are 404."""


def _services(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    return services


def create_app(
    *,
    open_services: Callable[[], AbstractAsyncContextManager[Services]],
    max_body_bytes: int = 64 * 1024,
    cors_origins: Sequence[str] = (),
    cors_origin_regex: str | None = None,
    requests_per_minute: int = 600,
    rest_limiter: Limiter | None = None,
    fetch_unknown_keys: bool = False,
) -> RequestContext:
    """The Litestar app inside ``RequestContext``, so that every request (a 404 or 405
    as well) has a request id and an access line.

    ``requests_per_minute``: the REST rate limit per user (token subject); 0: none.
    ``rest_limiter``: where that limit is counted (Redis, for the whole cluster);
    None: in this process.
    ``cors_origin_regex``: origins allowed besides ``cors_origins`` (a full match).
    ``fetch_unknown_keys``: before each handler, let the verifier fetch the JWKS for a
    bearer token whose ``kid`` it has not seen (the handlers verify synchronously).
    """
    # One limiter per app: every request with a valid bearer token counts, keyed by
    # its user. It is awaited (the count may be in Redis) before the handler runs,
    # because handlers authenticate synchronously.
    limiter: Limiter | None = None
    if requests_per_minute > 0:
        limiter = rest_limiter or RateLimiter(requests_per_minute, 60, scope="requests")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_services() as services:
            app.state.services = services
            yield

    async def store(request: Request[Any, Any, Any]) -> EventStore:
        return _services(request).store

    async def rooms(request: Request[Any, Any, Any]) -> RoomService:
        return _services(request).rooms

    async def sources(request: Request[Any, Any, Any]) -> Sources:
        return _services(request).sources

    async def node_status(request: Request[Any, Any, Any]) -> Mapping[str, object]:
        return _services(request).status()

    async def seeds(request: Request[Any, Any, Any]) -> RoomSeeds:
        return _services(request).seeds

    async def quiz(request: Request[Any, Any, Any]) -> QuizService:
        return _services(request).quiz

    async def notifications(request: Request[Any, Any, Any]) -> NotificationService:
        return _services(request).notifications

    async def app_limits(request: Request[Any, Any, Any]) -> AppLimits:
        return _services(request).app_limits

    def authenticated(request: Request[Any, Any, Any], services: Services) -> Claims:
        counted: Claims | None = request.scope.get(_COUNTED)  # type: ignore[assignment]
        return counted if counted is not None else claims_from(request, services.verifier)

    def stream_services(request: Request[Any, Any, Any]) -> StreamServices:
        services = _services(request)
        if services.feed is None:
            raise NotFound("live streams are not enabled on this app")
        verifier = services.verifier
        return StreamServices(
            store=services.store,
            rooms=services.rooms,
            feed=services.feed,
            limits=services.stream_limits,
            authenticate=verifier.verify,
        )

    async def claims(request: Request[Any, Any, Any]) -> Claims:
        return authenticated(request, _services(request))

    async def caller(request: Request[Any, Any, Any], claims: Claimed) -> UserRef:
        return principal_of(request, claims)[0]

    async def admin(claims: Claimed) -> Claims:
        return require_admin(claims)

    async def node_stats(request: Request[Any, Any, Any]) -> Callable[[], Mapping[str, object]]:
        return _services(request).stats

    async def cluster_stats(
        request: Request[Any, Any, Any],
    ) -> Callable[[], Awaitable[Mapping[str, object]]] | None:
        return _services(request).cluster_stats

    async def revoker(request: Request[Any, Any, Any]) -> Revocations:
        found = _services(request).revocations
        if found is None:
            raise NotFound("token revocation is not enabled on this app")
        return found

    async def directory(request: Request[Any, Any, Any]) -> RoomDirectory:
        found = _services(request).directory
        if found is None:
            raise NotFound("the room directory is not enabled on this app")
        return found

    async def issuer(request: Request[Any, Any, Any]) -> TokenIssuer:
        found = _services(request).issuer
        if found is None:
            raise NotFound(
                "the built-in token issuer is off (ROOMCAST_TOKEN_ISSUER, docs/operations.md)"
            )
        return found

    async def node_metrics(request: Request[Any, Any, Any]) -> Metrics:
        found = _services(request).metrics
        if found is None:
            raise NotFound("metrics are not enabled on this app")
        return found

    def command_context(request: Request[Any, Any, Any]) -> CommandContext:
        # Authenticates itself rather than depending on `claims`: command routes call
        # it (CommandContext.of) instead of resolving dependencies per request.
        services = _services(request)
        caller, app = principal_of(request, authenticated(request, services))
        return CommandContext(
            request=request,
            caller=caller,
            app=app,
            service=services.rooms,
            sources=services.sources,
            seeds=services.seeds,
        )

    # App-wide: Litestar keeps only the closest layer's before_request, so a
    # controller or route that set its own would skip the rate limit.
    async def before_request(request: Request[Any, Any, Any]) -> None:
        value = header(request.scope, b"authorization")
        scheme, _, token = (value or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            verifier = _services(request).verifier
            if fetch_unknown_keys:
                await verifier.prepare(token.strip())
            if limiter is not None:
                await count(request, verifier)
        elif limiter is not None and b"access_token=" in request.scope["query_string"]:
            await count_stream(request)

    async def count(request: Request[Any, Any, Any], verifier: TokenVerifier) -> None:
        try:
            verified = claims_from(request, verifier)
        except AuthenticationFailed:
            return  # not counted: a route that needs a token refuses it itself
        assert limiter is not None
        await limiter.admit(verified.user.id)
        # Verified once: the handler's authentication takes these claims.
        request.scope[_COUNTED] = verified  # type: ignore[literal-required]

    async def count_stream(request: Request[Any, Any, Any]) -> None:
        # EventSource cannot send a header: an SSE stream's token is in the query.
        token = request.query_params.get("access_token")
        if not token:
            return
        try:
            verified = _services(request).verifier.verify(token.strip())
        except AuthenticationFailed:
            return
        assert limiter is not None
        await limiter.admit(verified.user.id)

    litestar = Litestar(
        route_handlers=[
            RoomController,
            ParticipantController,
            PrizeController,
            DrawController,
            QuizController,
            NotificationController,
            health,
            metrics,
            admin_stats,
            admin_rooms,
            room_chain,
            revoke,
            *STREAM_ROUTES,
            sign_in,
            refresh,
            *web_routes(),
        ],
        dependencies={
            "store": Provide(store),
            "service": Provide(rooms),
            "sources": Provide(sources),
            "seeds": Provide(seeds),
            "node": Provide(node_status),
            "claims": Provide(claims),
            "caller": Provide(caller),
            "admin": Provide(admin),
            "node_stats": Provide(node_stats),
            "cluster_stats": Provide(cluster_stats),
            "node_metrics": Provide(node_metrics),
            "revoker": Provide(revoker),
            "directory": Provide(directory),
            "issuer": Provide(issuer),
            "quiz": Provide(quiz),
            "notifications": Provide(notifications),
            "app_limits": Provide(app_limits),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        state=State({"command_context": command_context, "stream_services": stream_services}),
        before_request=before_request if fetch_unknown_keys or limiter is not None else None,
        request_max_body_size=max_body_bytes,
        request_class=BodyRequest,
        cors_config=(
            CORSConfig(allow_origins=list(cors_origins), allow_origin_regex=cors_origin_regex)
            if cors_origins or cors_origin_regex
            else None
        ),
        openapi_config=OpenAPIConfig(
            title="roomcast",
            version=__version__,
            path="/api/docs",
            # The JSON and YAML documents completed from each route's opt=answers(...).
            render_plugins=render_plugins(),
        ),
        debug=False,
        logging_config=None,  # logging is configured once, by roomcast.logconfig
    )
    return RequestContext(EdgeGuard(litestar))
