"""Reactions: what the server does because an event was published.

Run by the relay for every event it publishes, before the outbox row is
deleted, so a reaction runs at least once per event (again after a relay
crash) and its own idempotency key makes the repeat a no-op: together,
exactly once. Today: the winner of a draw gets a ``winner_selected``
notification in their inbox.
"""

from __future__ import annotations

import msgspec

from roomcast.domain.state import Winner
from roomcast.outbox.relay import Publish
from roomcast.service.notifications import NotificationService

__all__ = ["Reactions", "publishing_with"]


class _WinnerSelected(msgspec.Struct, rename="camel"):
    event_id: str
    room_id: str
    winner: Winner


_winner_decoder = msgspec.json.Decoder(_WinnerSelected)


class Reactions:
    def __init__(self, notifications: NotificationService) -> None:
        self._notifications = notifications

    async def __call__(self, stream_id: str, event: str, payload: msgspec.Raw) -> None:
        if event == "winner:selected":
            await self._winner_selected(_winner_decoder.decode(payload))

    async def _winner_selected(self, selected: _WinnerSelected) -> None:
        winner = selected.winner
        await self._notifications.notify(
            winner.participant.user.id,
            type="winner_selected",
            title="Congratulations!",
            message=f"You won {winner.prize.name}",
            data={"roomId": selected.room_id, "winnerId": winner.id, "prizeId": winner.prize_id},
            once_for=f"winner_selected:{selected.event_id}",
        )


def publishing_with(publish: Publish, reactions: Reactions) -> Publish:
    """``publish``, then the reactions to the same event."""

    async def both(stream_id: str, event: str, payload: msgspec.Raw) -> None:
        await publish(stream_id, event, payload)
        await reactions(stream_id, event, payload)

    return both
