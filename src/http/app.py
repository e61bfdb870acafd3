"""``create_app``: the Litestar application, given the services it serves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from roomcast import __version__
from roomcast.domain.state import UserRef
from roomcast.http.auth import caller_from
from roomcast.http.commands import CommandContext
from roomcast.http.draws import DrawController
from roomcast.http.errors import EXCEPTION_HANDLERS
from roomcast.http.health import health
from roomcast.http.middleware import RequestContext
from roomcast.http.participants import ParticipantController
from roomcast.http.prizes import PrizeController
from roomcast.http.rooms import RoomController
from roomcast.outbox.store import EventStore
from roomcast.service.draws import RoomSeeds
from roomcast.service.rooms import RoomService
from roomcast.service.sources import Sources
from roomcast.tokens import TokenVerifier

__all__ = ["Services", "create_app"]


@dataclass(frozen=True, slots=True)
class Services:
    """What the REST edge needs; opened and closed around the app's lifetime."""

    store: EventStore
    rooms: RoomService
    verifier: TokenVerifier
    sources: Sources
    seeds: RoomSeeds
    status: Callable[[], Mapping[str, object]] = dict
    """This node's realtime side (relay, sockets) for /health; JSON-ready."""


def _services(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    return services


def create_app(
    *,
    open_services: Callable[[], AbstractAsyncContextManager[Services]],
    max_body_bytes: int = 64 * 1024,
    cors_origins: Sequence[str] = (),
) -> Litestar:
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

    async def caller(request: Request[Any, Any, Any]) -> UserRef:
        return caller_from(request, _services(request).verifier)

    async def command_context(request: Request[Any, Any, Any]) -> CommandContext:
        # Authenticates itself rather than depending on `caller`: one dependency to
        # resolve per command instead of two (Litestar's DI is per-request work).
        services = _services(request)
        return CommandContext(
            request=request,
            caller=caller_from(request, services.verifier),
            service=services.rooms,
            sources=services.sources,
            seeds=services.seeds,
        )

    return Litestar(
        route_handlers=[
            RoomController,
            ParticipantController,
            PrizeController,
            DrawController,
            health,
        ],
        dependencies={
            "store": Provide(store),
            "service": Provide(rooms),
            "sources": Provide(sources),
            "seeds": Provide(seeds),
            "node": Provide(node_status),
            "caller": Provide(caller),
            "ctx": Provide(command_context),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        middleware=[RequestContext],
        request_max_body_size=max_body_bytes,
        cors_config=CORSConfig(allow_origins=list(cors_origins)) if cors_origins else None,
        openapi_config=OpenAPIConfig(title="roomcast", version=__version__, path="/api/docs"),
        debug=False,
        logging_config=None,  # logging is configured once, by roomcast.logconfig
    )
