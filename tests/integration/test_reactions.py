"""Reactions run at least once per published event; their keys make that exactly once."""

from __future__ import annotations

import asyncio

import msgspec

from roomcast.domain.notifications import inbox_stream
from roomcast.outbox.store import EventStore
from roomcast.service.notifications import NotificationService
from roomcast.service.reactions import Reactions
from roomcast.service.sources import Sources

WINNER = {
    "eventId": "0190e8b2-0000-7000-8000-000000000001",
    "seq": 9,
    "type": "winner:selected",
    "roomId": "room_1",
    "timestamp": "2025-01-15T10:00:00Z",
    "winner": {
        "id": "winner_1",
        "participantId": "part_1",
        "prizeId": "prize_1",
        "participant": {"id": "part_1", "user": {"id": "usr_bob", "name": "Bob"}},
        "prize": {"id": "prize_1", "name": "TV", "imageUrl": None},
        "createdAt": "2025-01-15T10:00:00Z",
    },
    "drawNumber": 1,
    "eligibleCount": 3,
}


async def test_a_winner_selected_published_twice_notifies_once(store: EventStore):
    notifications = NotificationService(store, Sources())
    react = Reactions(notifications)
    payload = msgspec.Raw(msgspec.json.encode(WINNER))
    # The relay publishes again after a crash; two relays may even overlap.
    await asyncio.gather(*(react("room_1", "winner:selected", payload) for _ in range(3)))
    await react("room_1", "winner:selected", payload)

    items, unread, head = await notifications.inbox("usr_bob")
    assert (len(items), unread, head) == (1, 1, 1)
    assert items[0].data == {"roomId": "room_1", "winnerId": "winner_1", "prizeId": "prize_1"}

    other = msgspec.Raw(msgspec.json.encode({**WINNER, "eventId": WINNER["eventId"][:-1] + "2"}))
    await react("room_1", "winner:selected", other)
    assert (await store.head(inbox_stream("usr_bob"))) == 2


async def test_other_events_cause_nothing(store: EventStore):
    notifications = NotificationService(store, Sources())
    # Shaped like a win for dave, but named otherwise: the name decides.
    lookalike = {**WINNER, "type": "prize:updated", "eventId": WINNER["eventId"][:-1] + "3"}
    lookalike["winner"] = {**WINNER["winner"], "participant": {"id": "p", "user": {"id": "dave"}}}
    await Reactions(notifications)(
        "room_1", "prize:updated", msgspec.Raw(msgspec.json.encode(lookalike))
    )
    assert await notifications.inbox("dave") == ([], 0, 0)
