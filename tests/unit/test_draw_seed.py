"""Verifiable draws in the domain: the seed's commitment, its use by every draw, its reveal."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from msgspec import structs

from roomcast.domain import draw, room
from roomcast.domain.commands import ChangeRoomStatus, DeleteRoom, DrawWinner, RemoveWinner
from roomcast.domain.errors import RoomNotActive
from roomcast.domain.events import (
    Event,
    RoomDeleted,
    RoomStatusChanged,
    WinnerSelected,
    decode_event,
)
from roomcast.domain.state import Room, RoomStatus
from tests.unit.builders import (
    ALICE,
    AT,
    PRIZE_ID,
    ROOM_ID,
    SEED,
    active_room,
    created,
    draft_room,
    given,
    joined,
    pid,
    prize_created,
    then,
    user,
)

OTHER = bytes(range(32))
ZERO = bytes(32)


def draw_with(seed: bytes | None, winner_id: str = "win_1") -> DrawWinner:
    return DrawWinner(actor=ALICE, at=AT, prize_id=PRIZE_ID, winner_id=winner_id, seed=seed)


def activate(state: Room, seed: bytes | None) -> list[Event]:
    return room.decide(
        ChangeRoomStatus(actor=ALICE, at=AT, status=RoomStatus.ACTIVE, seed=seed), state
    )


class TestFormulas:
    def test_the_commitment_is_the_hex_sha256_of_the_seed(self) -> None:
        assert draw.commitment(ZERO) == hashlib.sha256(ZERO).hexdigest()
        assert draw.commitment(ZERO) == (
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        )  # the test vector of docs/audit.md

    def test_entropy_is_sha256_of_seed_and_the_8_byte_big_endian_draw_number(self) -> None:
        digest = hashlib.sha256(ZERO + b"\x00\x00\x00\x00\x00\x00\x00\x01").digest()
        assert draw.entropy(ZERO, 1) == int.from_bytes(digest, "big")
        assert digest.hex() == "08e00266fff0aacc64974f22a53622a7dc458ac1b5fd446ae7c99a4a99a564e6"
        assert (draw.entropy(ZERO, 1) % 3, draw.entropy(ZERO, 1) % 7) == (1, 4)
        assert draw.entropy(OTHER, 2**40) == int.from_bytes(
            hashlib.sha256(OTHER + (2**40).to_bytes(8, "big")).digest(), "big"
        )

    def test_draw_numbers_start_at_one(self) -> None:
        with pytest.raises(ValueError, match="start at 1"):
            draw.entropy(SEED, 0)

    def test_a_seed_matches_only_its_own_commitment_and_only_at_full_length(self) -> None:
        assert draw.seed_matches(SEED, draw.commitment(SEED))
        assert not draw.seed_matches(OTHER, draw.commitment(SEED))
        assert not draw.seed_matches(None, draw.commitment(SEED))
        assert not draw.seed_matches(b"short", draw.commitment(b"short"))

    def test_the_builders_seed_picks_the_first_eligible_in_its_first_three_draws(self) -> None:
        """tests/unit/builders.py relies on it: ``SEED`` behaves like the old ``entropy=0``."""
        for number in (1, 2, 3):
            assert draw.entropy(SEED, number) % 12 == 0


class TestActivationCommits:
    def test_activating_records_the_seeds_commitment_and_the_state_keeps_it(self) -> None:
        [event] = activate(draft_room(), OTHER)

        assert isinstance(event, RoomStatusChanged)
        assert event.seed_commitment == draw.commitment(OTHER)
        assert event.seed_reveal is None
        assert then(draft_room(), event).seed_commitment == draw.commitment(OTHER)

    @pytest.mark.parametrize("seed", [None, b"", bytes(31), bytes(33)], ids=repr)
    def test_activating_without_a_full_seed_is_a_fault_not_a_refusal(self, seed: bytes) -> None:
        with pytest.raises(draw.SeedMismatch):
            activate(draft_room(), seed)

    def test_the_commitment_is_on_the_wire_only_when_set(self) -> None:
        [event] = activate(draft_room(), OTHER)
        [closed] = room.decide(
            ChangeRoomStatus(actor=ALICE, at=AT, status=RoomStatus.CLOSED), draft_room()
        )

        assert b'"seedCommitment":"' + draw.commitment(OTHER).encode() in msgspec.json.encode(event)
        assert b"seed" not in msgspec.json.encode(closed)

    def test_events_and_snapshots_written_before_verifiable_draws_still_decode(self) -> None:
        old_event = (
            b'{"type":"room:status_changed","roomId":"room_1","timestamp":"2025-01-01T12:00:00Z",'
            b'"oldStatus":"draft","newStatus":"active"}'
        )
        event = decode_event(old_event)
        assert isinstance(event, RoomStatusChanged)
        assert event.seed_commitment is None

        snapshot = msgspec.json.encode(draft_room()).replace(b',"seedCommitment":null', b"")
        assert b"seedCommitment" not in snapshot
        assert msgspec.json.decode(snapshot, type=Room).seed_commitment is None


class TestDrawsUseTheCommittedSeed:
    def test_a_draw_picks_with_the_entropy_of_the_seed_and_its_draw_number(self) -> None:
        state = active_room(quantity=3)
        seen = []
        for number in (1, 2, 3):
            eligible = [p.id for p in state.eligible()]
            events = room.decide(draw_with(SEED, winner_id=f"win_{number}"), state)
            [event] = events
            assert isinstance(event, WinnerSelected)
            assert event.draw_number == number
            assert (
                event.winner.participant_id == eligible[draw.entropy(SEED, number) % len(eligible)]
            )
            seen.append(event.winner.participant_id)
            state = then(state, *events)
        assert sorted(seen) == [pid("bob"), pid("carol"), pid("dave")]

    def test_the_draw_number_keeps_counting_after_a_winner_is_removed(self) -> None:
        state = then(active_room(), *room.decide(draw_with(SEED), active_room()))
        state = then(
            state, *room.decide(RemoveWinner(actor=ALICE, at=AT, winner_id="win_1"), state)
        )

        [event] = room.decide(draw_with(SEED, winner_id="win_2"), state)

        assert isinstance(event, WinnerSelected)
        assert event.draw_number == 2

    @pytest.mark.parametrize("seed", [None, OTHER], ids=["missing", "another"])
    def test_a_seed_that_is_not_the_committed_one_is_a_fault(self, seed: bytes | None) -> None:
        with pytest.raises(draw.SeedMismatch):
            room.decide(draw_with(seed), active_room())

    def test_the_seed_check_comes_after_the_callers_own_mistakes(self) -> None:
        """A draft room answers ROOM_NOT_ACTIVE whatever seed the server brought."""
        state = given(created(), joined(user("bob")), prize_created())

        with pytest.raises(RoomNotActive):
            room.decide(draw_with(None), state)

    def test_a_room_activated_before_verifiable_draws_makes_no_draws(self) -> None:
        legacy = structs.replace(active_room(), seed_commitment=None)

        with pytest.raises(RoomNotActive, match="no seed commitment"):
            room.decide(draw_with(SEED), legacy)


class TestClosingReveals:
    def test_closing_an_active_room_reveals_the_seed(self) -> None:
        [event] = room.decide(
            ChangeRoomStatus(actor=ALICE, at=AT, status=RoomStatus.CLOSED, seed=SEED), active_room()
        )

        assert isinstance(event, RoomStatusChanged)
        assert event.seed_reveal == SEED.hex()
        assert draw.commitment(bytes.fromhex(event.seed_reveal)) == active_room().seed_commitment

    @pytest.mark.parametrize("seed", [None, OTHER], ids=["missing", "another"])
    def test_closing_with_a_seed_that_is_not_the_committed_one_is_a_fault(
        self, seed: bytes | None
    ) -> None:
        command = ChangeRoomStatus(actor=ALICE, at=AT, status=RoomStatus.CLOSED, seed=seed)

        with pytest.raises(draw.SeedMismatch):
            room.decide(command, active_room())

    def test_closing_a_draft_room_reveals_nothing_and_needs_no_seed(self) -> None:
        for seed in (None, SEED):
            command = ChangeRoomStatus(actor=ALICE, at=AT, status=RoomStatus.CLOSED, seed=seed)
            [event] = room.decide(command, draft_room())
            assert isinstance(event, RoomStatusChanged)
            assert (event.seed_commitment, event.seed_reveal) == (None, None)

    def test_closing_a_room_activated_before_verifiable_draws_reveals_nothing(self) -> None:
        legacy = structs.replace(active_room(), seed_commitment=None)
        command = ChangeRoomStatus(actor=ALICE, at=AT, status=RoomStatus.CLOSED)

        [event] = room.decide(command, legacy)

        assert isinstance(event, RoomStatusChanged)
        assert event.seed_reveal is None

    def test_deleting_an_active_room_reveals_the_seed_too(self) -> None:
        [event] = room.decide(DeleteRoom(actor=ALICE, at=AT, seed=SEED), active_room())

        assert event == RoomDeleted(room_id=ROOM_ID, timestamp=AT, seed_reveal=SEED.hex())

    def test_deleting_an_active_room_with_another_seed_is_a_fault(self) -> None:
        with pytest.raises(draw.SeedMismatch):
            room.decide(DeleteRoom(actor=ALICE, at=AT, seed=OTHER), active_room())

    def test_deleting_a_draft_room_reveals_nothing(self) -> None:
        [event] = room.decide(DeleteRoom(actor=ALICE, at=AT, seed=SEED), draft_room())

        assert event == RoomDeleted(room_id=ROOM_ID, timestamp=AT)
        assert b"seed" not in msgspec.json.encode(event)
