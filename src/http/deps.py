"""Names of the injected dependencies, as handler parameter types (Litestar ``Provide``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import Parameter

from roomcast.domain.state import UserRef
from roomcast.metrics import Metrics
from roomcast.outbox.revocations import Revocations
from roomcast.outbox.store import EventStore
from roomcast.service.auth import TokenIssuer
from roomcast.service.directory import RoomDirectory
from roomcast.service.draws import RoomSeeds
from roomcast.service.notifications import NotificationService
from roomcast.service.quiz import QuizService
from roomcast.service.rooms import RoomService
from roomcast.service.sources import Sources
from roomcast.tokens import Claims

__all__ = [
    "Admin",
    "AnyRequest",
    "Caller",
    "Claimed",
    "Clock",
    "ClusterStats",
    "Directory",
    "Issuer",
    "Node",
    "NodeMetrics",
    "NodeStats",
    "Notifications",
    "PathId",
    "Quiz",
    "Revoker",
    "Seeds",
    "Service",
    "Store",
]

PathId = Annotated[str, Parameter(max_length=64)]
"""A room, participant, prize or winner id in a path: unknown ones get their 404."""

Caller = NamedDependency[UserRef]
"""The authenticated user (bearer JWT); AUTHENTICATION_FAILED otherwise."""
Claimed = NamedDependency[Claims]
"""The verified token's claims (the dependency ``claims``); counted by the REST rate limit."""
Admin = NamedDependency[Claims]
"""The claims of a caller with the ``admin`` role; PERMISSION_DENIED otherwise."""
Service = NamedDependency[RoomService]
Store = NamedDependency[EventStore]
Clock = NamedDependency[Sources]
"""Time and new ids."""
Seeds = NamedDependency[RoomSeeds]
"""Each room's secret draw seed (activation, draws, closing)."""
AnyRequest = Request[Any, Any, Any]
"""A command route's request: ``CommandContext.of(request)`` gives the caller, services and
headers (``ctx.run(room_id, command)``)."""
Node = NamedDependency[Mapping[str, object]]
"""This node's realtime status (relay, sockets), for /health."""
Quiz = NamedDependency[QuizService]
"""Quiz questions: publish, close, and the secrets behind them."""
Notifications = NamedDependency[NotificationService]
"""Users' inboxes (``user:{userId}`` streams)."""
NodeMetrics = NamedDependency[Metrics]
"""This node's Prometheus metrics (``render()``)."""
NodeStats = NamedDependency[Callable[[], Mapping[str, object]]]
"""This node's id, connections, rooms and subscribers per room (admin stats)."""
ClusterStats = NamedDependency[Callable[[], Awaitable[Mapping[str, object]]] | None]
"""Every live node's counts (admin stats' ``cluster``); None when the app has none."""
Revoker = NamedDependency[Revocations]
"""Revoked tokens: ``revoke(jti, …)`` here, and every node learns it."""
Directory = NamedDependency[RoomDirectory]
"""The rooms each user organizes or takes part in (``GET /api/rooms``)."""
Issuer = NamedDependency[TokenIssuer]
"""The built-in token issuer; NOT_FOUND when it is off."""
