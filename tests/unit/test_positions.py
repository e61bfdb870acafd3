"""RoomPositions: each room's events once, in seq order, with holes held for a refill."""

from __future__ import annotations

from roomcast.gateway.positions import RoomPositions, Verdict

ROOM = "room:r1"


def deliver(positions: RoomPositions, seq: int, *, listened: bool = True) -> Verdict:
    verdict = positions.arrive(ROOM, seq, "room:updated", {"seq": seq}, listened=listened)
    if verdict is Verdict.DELIVER:
        positions.release(ROOM)
    return verdict


def test_next_seq_is_delivered_and_duplicates_are_dropped():
    positions = RoomPositions()
    positions.subscribed(ROOM, 3, alone=True)
    assert deliver(positions, 4) is Verdict.DELIVER
    assert deliver(positions, 4) is Verdict.DROP
    assert deliver(positions, 2) is Verdict.DROP
    assert positions.delivered[ROOM] == 4


def test_an_event_past_a_hole_is_held_until_the_log_fills_the_hole():
    positions = RoomPositions()
    positions.subscribed(ROOM, 3, alone=True)
    assert deliver(positions, 6) is Verdict.HOLD
    assert positions.gap(ROOM)
    assert positions.claim(ROOM)
    assert positions.take_next(ROOM) is None  # 4 and 5 are missing
    assert positions.step(ROOM, 4)
    assert positions.step(ROOM, 5)
    assert not positions.step(ROOM, 5)  # read twice: not the next one
    assert positions.take_next(ROOM) == (6, "room:updated", {"seq": 6})
    assert positions.release(ROOM) is False
    assert positions.delivered[ROOM] == 6


def test_events_arriving_while_the_room_is_owned_are_held_and_taken_in_order():
    positions = RoomPositions()
    positions.subscribed(ROOM, 1, alone=True)
    assert positions.arrive(ROOM, 2, "a", {}, listened=True) is Verdict.DELIVER
    # Delivery of 2 awaits (an eviction); 3 comes meanwhile.
    assert positions.arrive(ROOM, 3, "b", {}, listened=True) is Verdict.HOLD
    assert positions.take_next(ROOM) == (3, "b", {})
    assert positions.take_next(ROOM) is None
    assert positions.release(ROOM) is False


def test_a_room_nobody_here_listens_to_is_not_held():
    positions = RoomPositions()
    assert deliver(positions, 5, listened=False) is Verdict.DELIVER
    assert deliver(positions, 9, listened=False) is Verdict.DELIVER
    assert not positions.gap(ROOM)
    assert positions.delivered[ROOM] == 9


def test_a_subscribe_sets_the_position_only_when_it_is_alone():
    positions = RoomPositions()
    positions.subscribed(ROOM, 5, alone=False)
    assert positions.delivered[ROOM] == 5  # unknown before: its head is the start
    positions.subscribed(ROOM, 8, alone=False)
    assert positions.delivered[ROOM] == 5  # others may still be owed 6..8
    positions.subscribed(ROOM, 8, alone=True)
    assert positions.delivered[ROOM] == 8


def test_held_events_are_bounded_per_room():
    positions = RoomPositions(max_held=2)
    positions.subscribed(ROOM, 1, alone=True)
    for seq in (3, 4, 5):
        assert deliver(positions, seq) is Verdict.HOLD
    assert positions.held_count() == 2  # 5 dropped: the refill reads it from the log


def test_forget_drops_a_room_unless_it_is_owned():
    positions = RoomPositions()
    positions.subscribed(ROOM, 1, alone=True)
    positions.claim(ROOM)
    positions.forget(ROOM)
    assert ROOM in positions.delivered
    positions.release(ROOM)
    positions.forget(ROOM)
    assert ROOM not in positions.delivered
