"""Names of the injected dependencies, as handler parameter types (Litestar ``Provide``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import Parameter

from roomcast.domain.state import UserRef
from roomcast.http.commands import CommandContext
from roomcast.outbox.store import EventStore
from roomcast.service.draws import RoomSeeds
from roomcast.service.notifications import NotificationService
from roomcast.service.quiz import QuizService
from roomcast.service.rooms import RoomService
from roomcast.service.sources import Sources

__all__ = [
    "Caller",
    "Clock",
    "Command",
    "Node",
    "Notifications",
    "PathId",
    "Quiz",
    "Seeds",
    "Service",
    "Store",
]

PathId = Annotated[str, Parameter(max_length=64)]
"""A room, participant, prize or winner id in a path: unknown ones get their 404."""

Caller = NamedDependency[UserRef]
"""The authenticated user (bearer JWT); AUTHENTICATION_FAILED otherwise."""
Service = NamedDependency[RoomService]
Store = NamedDependency[EventStore]
Clock = NamedDependency[Sources]
"""Time and new ids."""
Seeds = NamedDependency[RoomSeeds]
"""Each room's secret draw seed (activation, draws, closing)."""
Command = NamedDependency[CommandContext]
"""Caller, services and headers of a command route (``ctx.run(room_id, command)``)."""
Node = NamedDependency[Mapping[str, object]]
"""This node's realtime status (relay, sockets), for /health."""
Quiz = NamedDependency[QuizService]
"""Quiz questions: publish, close, and the secrets behind them."""
Notifications = NamedDependency[NotificationService]
"""Users' inboxes (``user:{userId}`` streams)."""
