"""Replay pages: read ahead by seq range, yielded in order, nothing left in flight."""

from __future__ import annotations

import contextlib

import pytest

from roomcast.domain import room
from roomcast.gateway import replay
from roomcast.gateway.delivery import seq_of
from roomcast.ids import uuid7
from roomcast.outbox.codec import Envelope
from roomcast.outbox.store import EventStore, prepare

from ..helpers import create_room, rename, unique, user

ORG = user("ada")


async def _room(store: EventStore, renames: int) -> tuple[str, int]:
    stream = unique("room")
    loaded = await store.load(stream)
    events = room.decide(create_room(stream, ORG), None)
    state = None
    for event in events:
        state = room.evolve(state, event)
    for n in range(renames):
        decided = room.decide(rename(ORG, f"name {n}"), state)
        for event in decided:
            state = room.evolve(state, event)
        events.extend(decided)
    result = await store.append(prepare(loaded, events, actor_id=ORG.id, new_event_id=uuid7))
    return stream, result.version


def _seqs(page: list[Envelope]) -> list[int]:
    return [seq_of(e.payload) for e in page]


@pytest.mark.parametrize(
    ("after", "head_cut", "size"),
    [(0, 0, 7), (0, 0, 1), (5, 0, 7), (0, 3, 10), (30, 0, 100), (12, 0, 4)],
)
async def test_pages_cover_exactly_after_to_head_in_order(
    store: EventStore, after: int, head_cut: int, size: int
) -> None:
    stream, version = await _room(store, 40)
    head = version - head_cut
    got = [page async for page in replay.pages(store, stream, after, head, size)]
    assert [len(p) for p in got[:-1]] == [size] * (len(got) - 1)
    assert [s for page in got for s in _seqs(page)] == list(range(after + 1, head + 1))


async def test_no_page_when_nothing_is_missed(store: EventStore) -> None:
    stream, version = await _room(store, 3)
    assert [page async for page in replay.pages(store, stream, version, version, 10)] == []


async def test_a_consumer_that_stops_leaves_no_read_in_flight(store: EventStore, pool) -> None:
    stream, version = await _room(store, 60)
    idle_before = pool.get_idle_size()
    async with contextlib.aclosing(replay.pages(store, stream, 0, version, 5)) as log_pages:
        async for page in log_pages:
            assert _seqs(page) == [1, 2, 3, 4, 5]
            break  # the reads ahead were already asked for
    # Closing cancelled or awaited them: every connection is back in the pool.
    assert pool.get_idle_size() == idle_before
