"""RecentEvents: a room's latest events, contiguous in seq, bounded per room and in all."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from roomcast.gateway.delivery import seq_of
from roomcast.gateway.history import RecentEvents

ROOM = "room:room_a"


def payload(seq: int) -> msgspec.Raw:
    return msgspec.Raw(b'{"eventId":"e%d","seq":%d,"roomId":"room_a"}' % (seq, seq))


def deliver(recent: RecentEvents, *seqs: int, room: str = ROOM) -> None:
    for seq in seqs:
        recent.record(room, "room:updated", payload(seq), seq)


def seqs_since(recent: RecentEvents, after: int, head: int, room: str = ROOM):
    held = recent.since(room, after, head)
    if held is None:
        return None
    start, events = held
    got = [seq_of(e.payload) for e in events]
    assert got == list(range(start, start + len(got)))  # what since() says it starts at
    return got


def test_what_was_delivered_after_last_seq_up_to_the_head():
    recent = RecentEvents(per_room=100, total=1000)
    deliver(recent, *range(1, 11))
    assert seqs_since(recent, 3, 10) == list(range(4, 11))
    assert seqs_since(recent, 3, 7) == [4, 5, 6, 7]  # newer than the head: not sent
    assert seqs_since(recent, 0, 10) == list(range(1, 11))
    assert recent.since(ROOM, 10, 10) is None  # nothing missed
    assert recent.since(ROOM, 3, 11) is None  # the head is past what this node saw
    assert recent.since("room:other", 0, 5) is None


def test_a_window_that_starts_later_answers_its_part_only():
    """Events older than the window are the database's to read."""
    recent = RecentEvents(per_room=100, total=1000)
    deliver(recent, *range(20, 31))
    assert recent.since(ROOM, 5, 30) is not None
    assert seqs_since(recent, 5, 30) == list(range(20, 31))
    assert recent.since(ROOM, 5, 12) is None  # the head is before the window


def test_a_duplicate_is_ignored_and_a_gap_restarts_the_window():
    recent = RecentEvents(per_room=100, total=1000)
    deliver(recent, 1, 2, 3, 2, 3, 4)  # a relay published 2 and 3 again
    assert seqs_since(recent, 0, 4) == [1, 2, 3, 4]
    deliver(recent, 7, 8)  # 5 and 6 never reached this node
    assert seqs_since(recent, 0, 8) == [7, 8]
    assert len(recent) == 2


def test_each_room_keeps_its_latest_and_the_node_its_total():
    recent = RecentEvents(per_room=5, total=12)
    deliver(recent, *range(1, 21), room="room:a")
    assert seqs_since(recent, 0, 20, room="room:a") == [16, 17, 18, 19, 20]
    deliver(recent, *range(1, 6), room="room:b")
    deliver(recent, *range(1, 4), room="room:c")  # 13 held: the least recent room goes
    assert recent.since("room:a", 0, 20) is None
    assert seqs_since(recent, 0, 5, room="room:b") == [1, 2, 3, 4, 5]
    assert len(recent) == 8
    recent.forget("room:b")
    assert recent.since("room:b", 0, 5) is None
    assert len(recent) == 3


def test_a_payload_decoded_by_redis_is_kept_encoded():
    recent = RecentEvents(per_room=10, total=10)
    recent.record(ROOM, "room:updated", {"eventId": "e1", "seq": 1}, 1)
    _, events = recent.since(ROOM, 0, 1) or (0, [])
    assert msgspec.json.decode(events[0].payload) == {"eventId": "e1", "seq": 1}


def test_off_holds_nothing():
    recent = RecentEvents(per_room=0, total=100)
    deliver(recent, 1, 2, 3)
    assert recent.since(ROOM, 0, 3) is None
    assert len(recent) == 0


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=80),
    per_room=st.integers(min_value=1, max_value=20),
    ask=st.tuples(st.integers(min_value=0, max_value=120), st.integers(min_value=0, max_value=120)),
)
def test_whatever_arrives_an_answer_is_exactly_the_seqs_it_names(steps, per_room, ask):
    """Deliveries move forward by one, repeat earlier seqs or skip some; an answer is
    never a seq the room did not deliver here, never out of order, never with a hole,
    and always ends at the head."""
    recent = RecentEvents(per_room=per_room, total=1000)
    seq, delivered = 0, set()
    for step in steps:
        seq = max(1, seq + 1 + step) if step > 0 else max(1, seq + step) if step < 0 else seq + 1
        deliver(recent, seq)
        delivered.add(seq)
    after, head = min(ask), max(ask)
    got = seqs_since(recent, after, head)
    if got is not None:
        assert got, "an answer holds events"
        assert got[-1] == head
        assert got[0] > after
        assert set(got) <= delivered
        assert len(got) <= per_room


def test_a_users_inbox_is_not_kept():
    """``room:subscribe`` never replays a ``user:<id>`` stream: it would only push rooms out."""
    recent = RecentEvents(per_room=10, total=10)
    deliver(recent, 1, 2, room="room:user:usr_ada")
    assert len(recent) == 0
    assert recent.since("room:user:usr_ada", 0, 2) is None


def test_memory_is_bounded_in_bytes_as_well_as_events():
    big = msgspec.Raw(b'{"d":"' + b"x" * 1000 + b'"}')
    recent = RecentEvents(per_room=1000, total=1000, total_bytes=10_000)
    for seq in range(1, 51):
        recent.record("room:a", "room:updated", big, seq)
    assert recent.bytes <= 10_000
    assert len(recent) < 10
    # The newest are kept, contiguous up to the head.
    first, events = recent.since("room:a", 0, 50) or (0, [])
    assert first + len(events) - 1 == 50


def test_a_byte_bound_pushes_the_oldest_room_out_first():
    payload = msgspec.Raw(b'{"d":"' + b"x" * 1000 + b'"}')
    recent = RecentEvents(per_room=1000, total=1000, total_bytes=5_000)
    for seq in range(1, 4):
        recent.record("room:old", "e", payload, seq)
    for seq in range(1, 4):
        recent.record("room:new", "e", payload, seq)
    assert recent.since("room:old", 0, 3) is None
    assert recent.since("room:new", 0, 3) is not None
    assert recent.bytes <= 5_000
