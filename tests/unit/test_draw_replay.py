"""The audit's recomputation of draws and of the hash chain, without a database.

The audit folds eligibility incrementally (``roomcast.audit.replay``) rather than
with the domain's ``evolve``; the property test here holds the two to the same
answer on random histories.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given as hypothesis_given
from hypothesis import settings
from hypothesis import strategies as st
from msgspec import structs

from roomcast.audit.chain import Chain, Row
from roomcast.audit.replay import Draws
from roomcast.domain import room
from roomcast.domain.commands import (
    ChangeParticipantRole,
    ChangeRoomStatus,
    Command,
    CreatePrize,
    CreateRoom,
    DrawWinner,
    JoinRoom,
    LeaveRoom,
    RemoveParticipant,
    RemoveWinner,
)
from roomcast.domain.errors import Rejected
from roomcast.domain.events import Event, RoomStatusChanged, WinnerSelected
from roomcast.domain.state import Role, RoomStatus
from roomcast.outbox import codec
from tests.unit.builders import ALICE, AT, ROOM_ID, SEED, user

USERS = [user(name) for name in ("bob", "carol", "dave", "erin", "frank", "gina")]
IDS = ["part_a", "part_B", "part_é", "part_0", "part_zz", "part_a2", "part_Ω", "part_m"]
"""Participation ids whose code-point order is not their insertion order."""

actions = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.integers(0, 5), st.sampled_from(IDS)),
        st.tuples(st.just("leave"), st.integers(0, 5)),
        st.tuples(st.just("remove"), st.sampled_from(IDS)),
        st.tuples(st.just("role"), st.sampled_from(IDS), st.sampled_from(Role)),
        st.tuples(st.just("draw")),
        st.tuples(st.just("draw")),
        st.tuples(st.just("unwin"), st.integers(0, 7)),
    ),
    min_size=5,
    max_size=60,
)
CROWD = [("join", n, IDS[n * 3 % len(IDS)]) for n in range(4)]
"""Four participants to start the property test's rooms with, so most draws find someone."""


def _command(action: tuple[object, ...], step: int, winners: list[str]) -> Command | None:
    match action:
        case ("join", who, participant_id):
            assert isinstance(who, int)
            assert isinstance(participant_id, str)
            return JoinRoom(actor=USERS[who], at=AT, participant_id=participant_id)
        case ("leave", who):
            assert isinstance(who, int)
            return LeaveRoom(actor=USERS[who], at=AT)
        case ("remove", participant_id):
            assert isinstance(participant_id, str)
            return RemoveParticipant(actor=ALICE, at=AT, participant_id=participant_id)
        case ("role", participant_id, role):
            assert isinstance(participant_id, str)
            assert isinstance(role, Role)
            return ChangeParticipantRole(
                actor=ALICE, at=AT, participant_id=participant_id, role=role
            )
        case ("draw",):
            return DrawWinner(
                actor=ALICE, at=AT, prize_id="prz", winner_id=f"win_{step}", seed=SEED
            )
        case ("unwin", n):
            assert isinstance(n, int)
            if not winners:
                return None
            return RemoveWinner(actor=ALICE, at=AT, winner_id=winners[n % len(winners)])
    raise AssertionError(action)


def _history(steps: list[tuple[object, ...]]) -> list[Event]:
    """A room's accepted events: created, prize, active (committed to SEED), steps, closed."""
    state: room.State = None
    events: list[Event] = []
    winners: list[str] = []

    def run(command: Command | None) -> None:
        nonlocal state
        if command is None:
            return
        try:
            produced = room.decide(command, state)
        except Rejected:
            return
        events.extend(produced)
        state = room.fold(produced, state)
        assert state is not None
        winners[:] = list(state.winners)

    run(CreateRoom(actor=ALICE, at=AT, room_id=ROOM_ID, name="Room"))
    run(CreatePrize(actor=ALICE, at=AT, prize_id="prz", name="TV", quantity=1000))
    run(ChangeRoomStatus(actor=ALICE, at=AT, status=RoomStatus.ACTIVE, seed=SEED))
    for n, step in enumerate(steps):
        run(_command(step, n, winners))
    run(ChangeRoomStatus(actor=ALICE, at=AT, status=RoomStatus.CLOSED, seed=SEED))
    return events


class TestDrawsAgreeWithTheDomain:
    @settings(max_examples=300, deadline=None)
    @hypothesis_given(actions)
    def test_the_eligible_list_and_every_draw_match_the_decider(self, steps) -> None:
        replay = Draws(revealed_seed=SEED)
        state: room.State = None
        draws = 0
        for event in _history([*CROWD, *steps]):
            assert replay.apply(event) is None, event
            state = room.evolve(state, event)
            assert state is not None
            assert replay.eligible() == [p.id for p in state.eligible()]
            draws += isinstance(event, WinnerSelected)
        assert (replay.draws, replay.verified, replay.pending) == (draws, draws, 0)
        assert replay.revealed


def _checked(
    events: list[Event], seed: bytes | None = SEED
) -> tuple[int | None, str | None, Draws]:
    """The index of the first event the replay refuses, and why (``None, None`` if none)."""
    replay = Draws(revealed_seed=seed)
    for index, event in enumerate(events):
        reason = replay.apply(event)
        if reason is not None:
            return index, reason, replay
    return None, None, replay


def _drawn() -> list[Event]:
    return _history(
        [("join", 0, "part_a"), ("join", 1, "part_b"), ("join", 2, "part_c"), ("draw",), ("draw",)]
    )


def _index(events: list[Event], kind: type) -> int:
    return next(i for i, e in enumerate(events) if isinstance(e, kind))


class TestDrawsThatDoNotAddUp:
    def test_a_history_from_the_decider_checks_out(self) -> None:
        assert _checked(_drawn())[:2] == (None, None)
        assert _checked(_drawn())[2].verified == 2

    def test_a_rigged_winner_is_named(self) -> None:
        events = _drawn()
        at = _index(events, WinnerSelected)
        selected = events[at]
        assert isinstance(selected, WinnerSelected)
        other = next(
            p for p in ("part_a", "part_b", "part_c") if p != selected.winner.participant_id
        )
        rigged_winner = structs.replace(
            selected.winner,
            participant_id=other,
            participant=structs.replace(
                selected.winner.participant, id=other, user=USERS["abc".index(other[-1])]
            ),
        )
        events[at] = structs.replace(selected, winner=rigged_winner)

        index, reason, _ = _checked(events)

        assert index == at
        assert reason is not None
        assert reason.startswith(f"rigged draw: the winner is {other}")

    def test_a_wrong_eligible_count_or_draw_number_is_named(self) -> None:
        events = _drawn()
        at = _index(events, WinnerSelected)
        selected = events[at]
        assert isinstance(selected, WinnerSelected)

        events[at] = structs.replace(selected, eligible_count=7)
        assert _checked(events)[:2] == (at, "eligibleCount is 7, recomputed 3")
        events[at] = structs.replace(selected, draw_number=2)
        assert _checked(events)[:2] == (at, "drawNumber is 2, expected 1")

    def test_a_reveal_that_does_not_match_the_commitment_is_named(self) -> None:
        events = _drawn()
        closing = events[-1]
        assert isinstance(closing, RoomStatusChanged)
        events[-1] = structs.replace(closing, seed_reveal=bytes(32).hex())

        index, reason, _ = _checked(events, seed=bytes(32))

        assert index == len(events) - 1
        assert reason is not None
        assert "does not match the commitment" in reason

    def test_closing_an_active_room_without_revealing_the_seed_is_named(self) -> None:
        events = _drawn()
        closing = events[-1]
        assert isinstance(closing, RoomStatusChanged)
        events[-1] = structs.replace(closing, seed_reveal=None)

        index, reason, _ = _checked(events, seed=None)

        assert index == len(events) - 1
        assert reason == "the room left the active status without revealing its seed"

    def test_activation_without_a_commitment_is_named(self) -> None:
        events = _drawn()
        at = next(
            i
            for i, e in enumerate(events)
            if isinstance(e, RoomStatusChanged) and e.new_status is RoomStatus.ACTIVE
        )
        activation = events[at]
        assert isinstance(activation, RoomStatusChanged)
        events[at] = structs.replace(activation, seed_commitment=None)

        index, reason, _ = _checked(events)

        assert index == at
        assert reason is not None
        assert "without a seed commitment" in reason

    def test_before_the_reveal_draws_are_pending_but_winners_must_be_eligible(self) -> None:
        open_room = _drawn()[:-1]
        index, reason, replay = _checked(open_room, seed=None)
        assert (index, reason) == (None, None)
        assert (replay.verified, replay.pending) == (0, 2)
        assert replay.unverifiable() == "not yet verifiable: seed not revealed"

        at = _index(open_room, WinnerSelected)
        selected = open_room[at]
        assert isinstance(selected, WinnerSelected)
        stranger = user("zed")
        ghost = structs.replace(
            selected.winner,
            participant_id="part_zed",
            participant=structs.replace(selected.winner.participant, id="part_zed", user=stranger),
        )
        open_room[at] = structs.replace(selected, winner=ghost)
        assert _checked(open_room, seed=None)[:2] == (
            at,
            "the winner part_zed is not a current participant",
        )


# ------------------------------------------------------------ the chain


def _rows(count: int = 3, stream_id: str = ROOM_ID) -> list[Row]:
    rows = []
    prev = codec.ZERO_HASH
    for seq in range(1, count + 1):
        event_id = uuid.UUID(int=seq)
        data = b'{"type":"room:updated","n":%d,"name":"\xc3\xa9\\n"}' % seq
        at = datetime(2025, 1, 1, 12, 0, 0, seq * 5 % 2, tzinfo=UTC)
        digest = codec.chain_hash(
            prev,
            codec.canonical_bytes(
                stream_id=stream_id,
                seq=seq,
                event_id=event_id,
                type_="room:updated",
                data=data,
                actor_id="usr_alice" if seq % 2 else None,
                recorded_at=at,
            ),
        )
        rows.append(
            Row(
                seq,
                event_id,
                "room:updated",
                data.decode(),
                "usr_alice" if seq % 2 else None,
                at,
                prev,
                digest,
            )
        )
        prev = digest
    return rows


class TestChain:
    def test_an_intact_chain_and_head_pass(self) -> None:
        rows = _rows()
        chain = Chain(ROOM_ID)
        assert [chain.add(r) for r in rows] == [None, None, None]
        assert chain.check_head(3, rows[-1].hash) is None

    def test_a_changed_row_is_named_by_its_seq(self) -> None:
        rows = _rows()
        rows[1] = rows[1]._replace(data=rows[1].data.replace('"n":2', '"n":9'))
        chain = Chain(ROOM_ID)

        assert chain.add(rows[0]) is None
        reason = chain.add(rows[1])
        assert reason is not None
        assert reason.startswith("hash mismatch")

    def test_the_chain_covers_every_hashed_column(self) -> None:
        row = _rows(1)[0]
        for changed in [
            row._replace(actor_id="usr_mallory"),
            row._replace(type="room:created"),
            row._replace(event_id=uuid.UUID(int=99)),
            row._replace(recorded_at=datetime(2025, 1, 1, 12, 0, 1, tzinfo=UTC)),
        ]:
            assert Chain(ROOM_ID).add(changed) is not None, changed
        assert Chain("room_other").add(row) is not None

    def test_a_gap_a_duplicate_and_a_wrong_prev_hash_are_named(self) -> None:
        rows = _rows()
        chain = Chain(ROOM_ID)
        chain.add(rows[0])
        assert chain.add(rows[2]) == "seq 3 follows seq 1: seq 2 is missing"
        assert chain.add(rows[0]) == "seq 1 follows seq 1: seq 2 is duplicated or out of order"
        assert chain.add(rows[1]._replace(prev_hash=bytes(32))) == (
            "prev_hash is not the hash of the previous event"
        )

    @settings(max_examples=300, deadline=None)
    @hypothesis_given(
        stream_id=st.text(min_size=1),
        rows=st.lists(
            st.tuples(
                st.uuids(),
                st.text(),
                st.text(),
                st.none() | st.text(),
                st.datetimes(
                    min_value=datetime(1000, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]),
                ),
            ),
            min_size=1,
            max_size=5,
        ),
    )
    def test_the_verifier_hashes_the_bytes_the_server_hashes(self, stream_id, rows) -> None:
        """``Chain.extend`` splices the canonical bytes itself; the server encodes them
        with ``codec.canonical_bytes``: every string, time and offset must agree."""
        prev = codec.ZERO_HASH
        page = []
        for seq, (event_id, type_, text, actor_id, at) in enumerate(rows, start=1):
            data = msgspec.json.encode({"text": text})
            digest = codec.chain_hash(
                prev,
                codec.canonical_bytes(
                    stream_id=stream_id,
                    seq=seq,
                    event_id=event_id,
                    type_=type_,
                    data=data,
                    actor_id=actor_id,
                    recorded_at=at,
                ),
            )
            page.append((seq, str(event_id).encode(), type_, data, actor_id, at, prev, digest))
            prev = digest
        chain = Chain(stream_id)
        assert chain.extend(page) is None
        assert (chain.count, chain.last_hash) == (len(rows), prev)

    def test_a_head_that_does_not_name_the_last_event_is_named(self) -> None:
        rows = _rows()
        chain = Chain(ROOM_ID)
        for row in rows:
            chain.add(row)
        assert chain.check_head(4, rows[-1].hash) == (
            "streams.version is 4 but the log ends at seq 3"
        )
        assert chain.check_head(3, rows[0].hash) == (
            "streams.last_hash is not the hash of the last event"
        )


class TestCanonicalBytes:
    @settings(max_examples=500, deadline=None)
    @hypothesis_given(st.text())
    def test_strings_are_encoded_as_python_json_dumps_without_ascii_escaping(self, text) -> None:
        """docs/audit.md tells verifiers to encode strings this way."""
        assert msgspec.json.encode(text) == json.dumps(text, ensure_ascii=False).encode()

    @pytest.mark.parametrize(
        ("at", "rendered"),
        [
            (datetime(2025, 1, 1, 12, 0, tzinfo=UTC), "2025-01-01T12:00:00Z"),
            (datetime(2025, 1, 1, 12, 0, 0, 5, tzinfo=UTC), "2025-01-01T12:00:00.000005Z"),
            (datetime(2025, 1, 1, 12, 0, 0, 123000, tzinfo=UTC), "2025-01-01T12:00:00.123000Z"),
            (
                datetime(2025, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
                "2025-01-01T12:00:00Z",
            ),
        ],
    )
    def test_recorded_at_is_rendered_in_utc_with_microseconds_only_when_non_zero(
        self, at: datetime, rendered: str
    ) -> None:
        canonical = codec.canonical_bytes(
            stream_id="room_1",
            seq=1,
            event_id=uuid.UUID(int=1),
            type_="room:deleted",
            data=b'{"x": 1}',
            actor_id=None,
            recorded_at=at,
        )
        assert canonical == (
            b'{"actorId":null,"data":{"x": 1},"eventId":"00000000-0000-0000-0000-000000000001",'
            b'"recordedAt":"' + rendered.encode() + b'","seq":1,"streamId":"room_1",'
            b'"type":"room:deleted"}'
        )

    def test_a_naive_time_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            codec.canonical_bytes(
                stream_id="room_1",
                seq=1,
                event_id=uuid.UUID(int=1),
                type_="room:deleted",
                data=b"{}",
                actor_id=None,
                recorded_at=datetime(2025, 1, 1),
            )
