"""Replay pages: read ahead by seq range, yielded in order, nothing left in flight."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import msgspec
import pytest

from roomcast.domain import room
from roomcast.domain.events import AppEvent
from roomcast.gateway import replay
from roomcast.gateway.delivery import room_name, seq_of
from roomcast.gateway.history import RecentEvents
from roomcast.gateway.outlet import mark_replayed
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


def _as_frame(page: list[Envelope]) -> replay.Frame:
    """What ``Outlet.send`` would put in a ``room:events`` frame for ``page``."""
    marked = [bytes(mark_replayed(e.payload)) for e in page]
    body = (b"[" + b",".join(marked) + b"]").decode()
    return replay.Frame(len(page), seq_of(page[-1].payload), body)


class TestFrames:
    """``frames``: the same pages as ``pages``, joined, marked replayed, byte for byte."""

    @pytest.mark.parametrize(
        ("after", "head_cut", "size"),
        [(0, 0, 7), (0, 0, 1), (5, 0, 7), (0, 3, 10), (30, 0, 100), (12, 0, 4)],
    )
    async def test_from_the_database_they_are_the_pages_joined(
        self, store: EventStore, after: int, head_cut: int, size: int
    ) -> None:
        stream, version = await _room(store, 40)
        head = version - head_cut
        pages = [page async for page in replay.pages(store, stream, after, head, size)]
        frames = [frame async for frame in replay.frames(store, stream, after, head, size)]
        assert frames == [_as_frame(page) for page in pages]
        decoded = [p for frame in frames for p in msgspec.json.decode(frame.body)]
        assert [p["seq"] for p in decoded] == list(range(after + 1, head + 1))
        assert all(p["replayed"] is True for p in decoded)

    async def test_an_apps_event_and_unicode_are_spliced_as_the_log_reads_them(
        self, store: EventStore
    ) -> None:
        stream, _ = await _room(store, 2)
        loaded = await store.load(stream)
        decided = room.decide(rename(ORG, 'Quotes " and ünïcode ✓ 🎉'), loaded.state)
        app_event = AppEvent(
            type="app_frames:score",
            room_id=stream,
            timestamp=datetime.now(UTC),
            app_id="app_frames",
            data={"points": 3, "who": "ädä"},
        )
        pending = prepare(loaded, [*decided, app_event], actor_id=ORG.id, new_event_id=uuid7)
        head = (await store.append(pending)).version
        pages = [page async for page in replay.pages(store, stream, 0, head, 50)]
        frames = [frame async for frame in replay.frames(store, stream, 0, head, 50)]
        assert frames == [_as_frame(page) for page in pages]
        *_, renamed, last = msgspec.json.decode(frames[-1].body)
        assert renamed["replayed"] is True
        assert "ünïcode ✓ 🎉" in frames[-1].body
        assert (last["points"], last["who"], last["replayed"]) == (3, "ädä", True)
        assert "data" not in last  # an app's event is sent flat (seed 003)

    async def test_nothing_missed_is_no_frame(self, store: EventStore) -> None:
        stream, version = await _room(store, 3)
        assert [f async for f in replay.frames(store, stream, version, version, 10)] == []

    @pytest.mark.parametrize(
        ("after", "window_from", "window_to", "head_cut"),
        [(0, 1, 41, 0), (0, 30, 41, 0), (10, 5, 41, 3), (0, 30, 38, 0), (25, 36, 41, 10)],
    )
    async def test_held_events_give_the_same_frames_as_the_log(
        self, store: EventStore, after: int, window_from: int, window_to: int, head_cut: int
    ) -> None:
        stream, version = await _room(store, 40)
        head = version - head_cut
        logged = await store.read(stream, 0, version)
        recent = RecentEvents(per_room=1000, total=1000)
        for envelope in logged:
            seq = seq_of(envelope.payload)
            if window_from <= seq <= window_to:
                recent.record(room_name(stream), envelope.event, envelope.payload, seq)
        pages = [page async for page in replay.pages(store, stream, after, head, 7, recent)]
        before = _replayed()
        frames = [f async for f in replay.frames(store, stream, after, head, 7, recent)]
        counts = _replayed()
        assert frames == [_as_frame(page) for page in pages]
        held = window_from <= head < window_to + 1
        memory = head - max(after, window_from - 1) if held else 0
        assert counts["memory"] - before["memory"] == memory
        assert counts["database"] - before["database"] == head - after - memory

    async def test_a_consumer_that_stops_leaves_no_read_in_flight(
        self, store: EventStore, pool
    ) -> None:
        stream, version = await _room(store, 60)
        idle_before = pool.get_idle_size()
        async with contextlib.aclosing(replay.frames(store, stream, 0, version, 5)) as frames:
            async for frame in frames:
                assert (frame.events, frame.last_seq) == (5, 5)
                break
        assert pool.get_idle_size() == idle_before
