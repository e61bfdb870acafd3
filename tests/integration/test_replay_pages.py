"""Replay pages: read ahead by seq range, yielded in order, nothing left in flight."""

from __future__ import annotations

import contextlib

import pytest

from roomcast.domain import room
from roomcast.gateway import replay
from roomcast.gateway.delivery import room_name, seq_of
from roomcast.gateway.history import RecentEvents
from roomcast.ids import uuid7
from roomcast.metrics import REPLAYED_EVENTS
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


@pytest.mark.parametrize(
    ("after", "window_from", "window_to", "head_cut"),
    [
        (0, 1, 41, 0),  # all of it held: nothing read
        (0, 30, 41, 0),  # the older part read, the newer part held
        (10, 5, 41, 3),  # held from before lastSeq, up past the head
        (0, 30, 38, 0),  # the window stops short of the head: all read
        (25, 36, 41, 10),  # the window starts after the head: all read
    ],
)
async def test_held_events_serve_their_part_and_the_whole_is_the_same_log(
    store: EventStore, after: int, window_from: int, window_to: int, head_cut: int
) -> None:
    stream, version = await _room(store, 40)
    head = version - head_cut
    logged = await store.read(stream, 0, version)
    recent = RecentEvents(per_room=1000, total=1000)
    for envelope in logged:  # what this node's relay published, as it published it
        seq = seq_of(envelope.payload)
        if window_from <= seq <= window_to:
            recent.record(room_name(stream), envelope.event, envelope.payload, seq)
    before = _replayed()
    got = [page async for page in replay.pages(store, stream, after, head, 7, recent)]
    after_counts = _replayed()
    flat = [e for page in got for e in page]
    assert flat == logged[after:head]  # the same envelopes, byte for byte, in order
    assert all(len(page) <= 7 for page in got)
    held = window_from <= head < window_to + 1
    memory = head - max(after, window_from - 1) if held else 0
    assert after_counts["memory"] - before["memory"] == memory
    assert after_counts["database"] - before["database"] == head - after - memory


def _replayed() -> dict[str, float]:
    return {
        source: REPLAYED_EVENTS.labels(source)._value.get() for source in ("memory", "database")
    }
