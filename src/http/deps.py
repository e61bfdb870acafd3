"""Names of the injected dependencies, as handler parameter types (Litestar ``Provide``)."""

from __future__ import annotations

from litestar.di import NamedDependency

from roomcast.domain.state import UserRef
from roomcast.outbox.store import EventStore
from roomcast.service.draws import RoomSeeds
from roomcast.service.rooms import RoomService
from roomcast.service.sources import Sources

__all__ = ["Caller", "Clock", "Seeds", "Service", "Store"]

Caller = NamedDependency[UserRef]
"""The authenticated user (bearer JWT); AUTHENTICATION_FAILED otherwise."""
Service = NamedDependency[RoomService]
Store = NamedDependency[EventStore]
Clock = NamedDependency[Sources]
"""Time and new ids."""
Seeds = NamedDependency[RoomSeeds]
"""Each room's secret draw seed (activation, draws, closing)."""
