"""The command side of rooms (``StreamService`` with the room decider) and who may read one."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from roomcast.domain import room
from roomcast.domain.commands import Command
from roomcast.domain.errors import PermissionDenied, RoomNotFound
from roomcast.domain.state import Room
from roomcast.ids import uuid7_text
from roomcast.outbox.store import EventStore, Loaded
from roomcast.service.streams import (
    CommandResult,
    Idempotency,
    Outcome,
    StreamService,
    fingerprint,
)

__all__ = ["CommandResult", "Idempotency", "Outcome", "RoomService", "fingerprint"]


class RoomService(StreamService[Command, room.State]):
    def __init__(
        self,
        store: EventStore,
        *,
        new_event_id: Callable[[], uuid.UUID | str] = uuid7_text,
        cache_size: int = 10_000,
        max_attempts: int = 50,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            store,
            room.ROOMS,
            new_event_id=new_event_id,
            cache_size=cache_size,
            max_attempts=max_attempts,
            on_commit=on_commit,
        )

    async def execute(
        self,
        room_id: str,
        command: Command,
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        _require_room_id(room_id)
        return await super().execute(
            room_id, command, expected_version=expected_version, idempotency=idempotency
        )

    async def current(self, room_id: str, *, head: int | None = None) -> Loaded[room.State]:
        """The room's state at its committed head (cache checked against the head, or
        against ``head`` when the caller has just read it)."""
        _require_room_id(room_id)
        return await super().current(room_id, head=head)

    async def readable(
        self, room_id: str, user_id: str, action: str, *, head: int | None = None
    ) -> tuple[Room, int]:
        """The room at its head and its version, if it exists and ``user_id`` may read it
        (its organizer or a current participant); ROOM_NOT_FOUND or PERMISSION_DENIED.

        ``head``: the stream's version as the caller just read it; a cached state
        at that version is trusted without reading the head again.
        """
        loaded = await self.current(room_id, head=head)
        state = loaded.state
        if state is None or state.deleted:
            raise RoomNotFound("room not found", {"roomId": room_id})
        if not state.can_read(user_id):
            raise PermissionDenied(
                "only the organizer and participants may read this room",
                {"action": action, "roomId": room_id},
            )
        return state, loaded.version


def _require_room_id(room_id: str) -> None:
    # Room ids never contain ':'; other streams (``user:{id}`` inboxes) do, and
    # must never be read or written as rooms through a room's routes.
    if ":" in room_id:
        raise RoomNotFound("room not found", {"roomId": room_id})
