"""The room decider, command by command: given history, when a command, then events or a refusal."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from msgspec import structs

from roomcast.domain import room
from roomcast.domain.commands import (
    ChangeParticipantRole,
    ChangeRoomStatus,
    Command,
    CreatePrize,
    CreateRoom,
    DeletePrize,
    DeleteRoom,
    DrawWinner,
    JoinRoom,
    LeaveRoom,
    RemoveParticipant,
    RemoveWinner,
    UpdatePrize,
    UpdateRoom,
)
from roomcast.domain.draw import commitment, entropy
from roomcast.domain.errors import (
    AlreadyParticipant,
    ErrorCode,
    InvalidPayload,
    InvalidStatusTransition,
    NoEligibleParticipants,
    NotParticipant,
    ParticipantNotFound,
    PermissionDenied,
    PrizeExhausted,
    PrizeNotFound,
    PrizeQuantityTooLow,
    Rejected,
    RoomClosed,
    RoomNotActive,
    RoomNotFound,
    VersionConflict,
    WinnerNotFound,
)
from roomcast.domain.events import (
    ParticipantChanges,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    PrizeChanges,
    PrizeCreated,
    PrizeDeleted,
    PrizeUpdated,
    RoomChanges,
    RoomCreated,
    RoomDeleted,
    RoomUpdated,
    WinnerRemoved,
    WinnerSelected,
)
from roomcast.domain.state import (
    ParticipantRef,
    PrizeRef,
    Role,
    Room,
    RoomInfo,
    RoomStatus,
    UserRef,
    Winner,
)
from tests.unit.builders import (
    ALICE,
    AT,
    BOB,
    CAROL,
    DAVE,
    MIA,
    PRIZE_ID,
    ROOM_ID,
    SEED,
    ZED,
    active_room,
    closed_room,
    created,
    draft_room,
    given,
    joined,
    participant,
    pid,
    prize,
    prize_created,
    promoted,
    status,
    then,
    user,
)

WINNER_ID = "win_1"


def draw(actor: UserRef = ALICE, winner_id: str = WINNER_ID, seed: bytes = SEED) -> DrawWinner:
    return DrawWinner(actor=actor, at=AT, prize_id=PRIZE_ID, winner_id=winner_id, seed=seed)


def with_winner(state: Room, winner_id: str = WINNER_ID) -> Room:
    """``state`` after alice draws ``prz_tv`` (``SEED`` picks the first eligible)."""
    return then(state, *room.decide(draw(winner_id=winner_id), state))


def committed_to(state: Room, seed: bytes) -> Room:
    """``state`` as if it had been activated with ``seed`` instead of ``SEED``."""
    return structs.replace(state, seed_commitment=commitment(seed))


OTHER_SEEDS = [k.to_bytes(32, "big") for k in range(20)]


def refused(command: Command, state: room.State, expected: type[Rejected]) -> Rejected:
    """The refusal ``decide`` raises, which must be exactly ``expected`` with its code."""
    with pytest.raises(Rejected) as caught:
        room.decide(command, state)
    error = caught.value
    assert type(error) is expected, repr(error)
    assert error.code is expected.code
    return error


def every_command(actor: UserRef) -> list[Command]:
    """One command of each kind but CreateRoom, aimed at the entities of ``active_room``."""
    return [
        UpdateRoom(actor=actor, at=AT, name="Renamed"),
        ChangeRoomStatus(actor=actor, at=AT, status=RoomStatus.CLOSED, seed=SEED),
        DeleteRoom(actor=actor, at=AT, seed=SEED),
        JoinRoom(actor=actor, at=AT, participant_id="part_new"),
        LeaveRoom(actor=actor, at=AT),
        RemoveParticipant(actor=actor, at=AT, participant_id=pid("carol")),
        ChangeParticipantRole(actor=actor, at=AT, participant_id=pid("carol"), role=Role.MODERATOR),
        CreatePrize(actor=actor, at=AT, prize_id="prz_new", name="Car"),
        UpdatePrize(actor=actor, at=AT, prize_id=PRIZE_ID, name="Big TV"),
        DeletePrize(actor=actor, at=AT, prize_id=PRIZE_ID),
        draw(actor, winner_id="win_new"),
        RemoveWinner(actor=actor, at=AT, winner_id=WINNER_ID),
    ]


def command_name(command: Command) -> str:
    return type(command).__name__


# ------------------------------------------------------------ room existence


class TestUnknownOrDeletedRoom:
    @pytest.mark.parametrize("command", every_command(ALICE), ids=command_name)
    def test_a_room_that_was_never_created_is_not_found(self, command: Command) -> None:
        error = refused(command, room.initial_state(), RoomNotFound)
        assert error.code is ErrorCode.ROOM_NOT_FOUND

    @pytest.mark.parametrize("command", every_command(ALICE), ids=command_name)
    def test_a_deleted_room_is_not_found_even_by_its_organizer(self, command: Command) -> None:
        state = then(active_room(), RoomDeleted(room_id=ROOM_ID, timestamp=AT))

        refused(command, state, RoomNotFound)

    def test_a_deleted_room_is_terminal(self) -> None:
        state = then(active_room(), RoomDeleted(room_id=ROOM_ID, timestamp=AT))

        assert room.is_terminal(state)
        assert not room.is_terminal(active_room())
        assert not room.is_terminal(room.initial_state())

    def test_creating_a_room_over_a_deleted_one_is_a_conflict(self) -> None:
        """Room ids are never reused: the stream still exists, so this is a conflict."""
        state = then(draft_room(), RoomDeleted(room_id=ROOM_ID, timestamp=AT))
        command = CreateRoom(actor=ALICE, at=AT, room_id=ROOM_ID, name="Again")

        refused(command, state, VersionConflict)


# ------------------------------------------------------------ the room itself


class TestCreateRoom:
    def test_the_creator_becomes_organizer_of_a_draft_room(self) -> None:
        command = CreateRoom(
            actor=ALICE,
            at=AT,
            room_id=ROOM_ID,
            name="Lottery",
            description="Friday draw",
            settings={"theme": "dark"},
        )

        events = room.decide(command, room.initial_state())

        assert events == [
            RoomCreated(
                room_id=ROOM_ID,
                timestamp=AT,
                room=RoomInfo(
                    id=ROOM_ID,
                    name="Lottery",
                    description="Friday draw",
                    status=RoomStatus.DRAFT,
                    settings={"theme": "dark"},
                    organizer_id=ALICE.id,
                    created_at=AT,
                ),
            )
        ]
        state = given(*events)
        assert state.participants == {}
        assert state.members == {}

    @pytest.mark.parametrize("name", ["", "   "])
    def test_a_blank_name_is_invalid(self, name: str) -> None:
        command = CreateRoom(actor=ALICE, at=AT, room_id=ROOM_ID, name=name)

        refused(command, None, InvalidPayload)

    def test_an_existing_room_cannot_be_created_again(self) -> None:
        command = CreateRoom(actor=BOB, at=AT, room_id=ROOM_ID, name="Mine")

        error = refused(command, draft_room(), VersionConflict)
        assert error.code is ErrorCode.CONFLICT


class TestUpdateRoom:
    def test_the_organizer_renames_the_room(self) -> None:
        state = draft_room()

        events = room.decide(UpdateRoom(actor=ALICE, at=AT, name="Raffle"), state)

        renamed = structs.replace(state.info, name="Raffle")
        assert events == [
            RoomUpdated(
                room_id=ROOM_ID, timestamp=AT, changes=RoomChanges(name="Raffle"), room=renamed
            )
        ]
        assert then(state, *events).info == renamed

    def test_a_moderator_may_update_the_room(self) -> None:
        command = UpdateRoom(actor=MIA, at=AT, description="Friday", settings={"a": 1})

        [event] = room.decide(command, active_room())

        assert isinstance(event, RoomUpdated)
        assert event.changes == RoomChanges(description="Friday", settings={"a": 1})
        assert event.room.description == "Friday"
        assert event.room.settings == {"a": 1}

    @pytest.mark.parametrize("actor", [BOB, ZED], ids=["participant", "non-member"])
    def test_a_participant_or_stranger_cannot_update_the_room(self, actor: UserRef) -> None:
        error = refused(
            UpdateRoom(actor=actor, at=AT, name="Mine"), active_room(), PermissionDenied
        )
        assert error.code is ErrorCode.PERMISSION_DENIED

    def test_updating_to_equal_values_changes_nothing(self) -> None:
        command = UpdateRoom(actor=ALICE, at=AT, name="Lottery", description=None, settings={})

        assert room.decide(command, draft_room()) == []

    def test_only_the_fields_that_differ_are_reported_as_changes(self) -> None:
        command = UpdateRoom(actor=ALICE, at=AT, name="Lottery", description="new")

        [event] = room.decide(command, draft_room())

        assert isinstance(event, RoomUpdated)
        assert event.changes == RoomChanges(description="new")

    def test_a_blank_name_is_invalid(self) -> None:
        refused(UpdateRoom(actor=ALICE, at=AT, name=" "), draft_room(), InvalidPayload)

    def test_a_closed_room_cannot_be_updated(self) -> None:
        error = refused(UpdateRoom(actor=ALICE, at=AT, name="Raffle"), closed_room(), RoomClosed)
        assert error.code is ErrorCode.ROOM_CLOSED


ALLOWED_TRANSITIONS = [
    (RoomStatus.DRAFT, RoomStatus.ACTIVE),
    (RoomStatus.DRAFT, RoomStatus.CLOSED),
    (RoomStatus.ACTIVE, RoomStatus.CLOSED),
]
FORBIDDEN_TRANSITIONS = [
    (old, new) for old in RoomStatus for new in RoomStatus if (old, new) not in ALLOWED_TRANSITIONS
]


def room_in(current: RoomStatus) -> Room:
    state = draft_room()
    if current is RoomStatus.ACTIVE:
        return then(state, status(RoomStatus.DRAFT, RoomStatus.ACTIVE))
    if current is RoomStatus.CLOSED:
        return then(state, status(RoomStatus.DRAFT, RoomStatus.CLOSED))
    return state


class TestChangeRoomStatus:
    @pytest.mark.parametrize(("old", "new"), ALLOWED_TRANSITIONS)
    def test_the_organizer_moves_the_status_forward(self, old: RoomStatus, new: RoomStatus) -> None:
        state = room_in(old)

        events = room.decide(ChangeRoomStatus(actor=ALICE, at=AT, status=new, seed=SEED), state)

        assert events == [status(old, new)]  # commits to SEED / reveals it (test_draw_seed.py)
        assert then(state, *events).info.status is new

    @pytest.mark.parametrize(("old", "new"), FORBIDDEN_TRANSITIONS)
    def test_any_other_transition_is_invalid_including_to_the_same_status(
        self, old: RoomStatus, new: RoomStatus
    ) -> None:
        error = refused(
            ChangeRoomStatus(actor=ALICE, at=AT, status=new), room_in(old), InvalidStatusTransition
        )
        assert error.code is ErrorCode.INVALID_STATUS_TRANSITION
        assert error.details == {"from": str(old), "to": str(new)}

    @pytest.mark.parametrize("actor", [MIA, BOB, ZED], ids=["moderator", "participant", "other"])
    def test_only_the_organizer_may_change_the_status(self, actor: UserRef) -> None:
        command = ChangeRoomStatus(actor=actor, at=AT, status=RoomStatus.CLOSED)

        refused(command, active_room(), PermissionDenied)


class TestDeleteRoom:
    @pytest.mark.parametrize("state", [draft_room(), active_room(), closed_room()])
    def test_the_organizer_deletes_the_room_in_any_status(self, state: Room) -> None:
        events = room.decide(DeleteRoom(actor=ALICE, at=AT, seed=SEED), state)

        # Deleting an active room reveals its seed, as closing does (test_draw_seed.py).
        reveal = SEED.hex() if state.info.status is RoomStatus.ACTIVE else None
        assert events == [RoomDeleted(room_id=ROOM_ID, timestamp=AT, seed_reveal=reveal)]
        assert room.is_terminal(then(state, *events))

    @pytest.mark.parametrize("actor", [MIA, BOB, ZED], ids=["moderator", "participant", "other"])
    def test_only_the_organizer_may_delete_the_room(self, actor: UserRef) -> None:
        refused(DeleteRoom(actor=actor, at=AT), active_room(), PermissionDenied)


CHANGES_A_CLOSED_ROOM_REFUSES = [
    *(
        c
        for c in every_command(ALICE)
        if not isinstance(c, DeleteRoom | ChangeRoomStatus | DrawWinner | JoinRoom | LeaveRoom)
    ),
    JoinRoom(actor=ZED, at=AT, participant_id="part_zed"),
    LeaveRoom(actor=BOB, at=AT),
]


class TestClosedRoom:
    @pytest.mark.parametrize("command", CHANGES_A_CLOSED_ROOM_REFUSES, ids=command_name)
    def test_a_closed_room_refuses_every_change_but_deletion(self, command: Command) -> None:
        state = then(with_winner(active_room()), status(RoomStatus.ACTIVE, RoomStatus.CLOSED))

        refused(command, state, RoomClosed)

    def test_a_closed_room_can_still_be_deleted(self) -> None:
        assert room.decide(DeleteRoom(actor=ALICE, at=AT), closed_room()) == [
            RoomDeleted(room_id=ROOM_ID, timestamp=AT)
        ]

    def test_a_closed_room_cannot_be_reopened(self) -> None:
        """Its status is final: that refusal names the transition, not the closed room."""
        command = ChangeRoomStatus(actor=ALICE, at=AT, status=RoomStatus.ACTIVE)

        refused(command, closed_room(), InvalidStatusTransition)

    def test_a_closed_room_makes_no_draws(self) -> None:
        """Draws check for an active room, so a closed one answers ROOM_NOT_ACTIVE."""
        refused(draw(), closed_room(), RoomNotActive)


# ------------------------------------------------------------ membership


class TestJoinRoom:
    def test_a_stranger_joins_as_a_plain_participant(self) -> None:
        state = active_room()

        events = room.decide(JoinRoom(actor=ZED, at=AT, participant_id="part_zed"), state)

        assert events == [
            ParticipantJoined(
                room_id=ROOM_ID, timestamp=AT, participant=participant(ZED, "part_zed")
            )
        ]
        after = then(state, *events)
        assert after.members[ZED.id] == "part_zed"
        assert after.member(ZED.id) == participant(ZED, "part_zed")

    def test_a_draft_room_can_be_joined(self) -> None:
        [event] = room.decide(JoinRoom(actor=BOB, at=AT, participant_id="p"), draft_room())

        assert isinstance(event, ParticipantJoined)

    @pytest.mark.parametrize(
        "actor", [ALICE, MIA, BOB], ids=["organizer", "moderator", "participant"]
    )
    def test_a_member_cannot_join_again(self, actor: UserRef) -> None:
        error = refused(
            JoinRoom(actor=actor, at=AT, participant_id="part_2"), active_room(), AlreadyParticipant
        )
        assert error.code is ErrorCode.ALREADY_PARTICIPANT

    def test_rejoining_after_leaving_is_a_new_participation(self) -> None:
        state = then(
            active_room(),
            ParticipantLeft(
                room_id=ROOM_ID, timestamp=AT, participant_id=pid("bob"), user_id=BOB.id
            ),
        )

        events = room.decide(JoinRoom(actor=BOB, at=AT, participant_id="part_bob_2"), state)

        assert events == [
            ParticipantJoined(
                room_id=ROOM_ID, timestamp=AT, participant=participant(BOB, "part_bob_2")
            )
        ]
        after = then(state, *events)
        assert after.members[BOB.id] == "part_bob_2"
        assert pid("bob") not in after.participants

    def test_a_closed_room_cannot_be_joined(self) -> None:
        command = JoinRoom(actor=ZED, at=AT, participant_id="part_zed")

        refused(command, closed_room(), RoomClosed)


class TestLeaveRoom:
    @pytest.mark.parametrize(("actor", "name"), [(BOB, "bob"), (MIA, "mia")])
    def test_a_participant_or_moderator_leaves(self, actor: UserRef, name: str) -> None:
        state = active_room()

        events = room.decide(LeaveRoom(actor=actor, at=AT), state)

        assert events == [
            ParticipantLeft(
                room_id=ROOM_ID,
                timestamp=AT,
                participant_id=pid(name),
                user_id=actor.id,
                reason="left",
                removed_by=None,
            )
        ]
        after = then(state, *events)
        assert actor.id not in after.members
        assert pid(name) not in after.participants

    @pytest.mark.parametrize("actor", [ALICE, ZED], ids=["organizer", "non-member"])
    def test_someone_who_is_not_a_participant_cannot_leave(self, actor: UserRef) -> None:
        error = refused(LeaveRoom(actor=actor, at=AT), active_room(), NotParticipant)
        assert error.code is ErrorCode.NOT_PARTICIPANT

    def test_a_closed_room_cannot_be_left(self) -> None:
        refused(LeaveRoom(actor=BOB, at=AT), closed_room(), RoomClosed)


class TestRemoveParticipant:
    @pytest.mark.parametrize(
        ("actor", "target"),
        [(ALICE, "carol"), (ALICE, "mia"), (MIA, "carol")],
        ids=["organizer-participant", "organizer-moderator", "moderator-participant"],
    )
    def test_a_manager_removes_someone_below_them(self, actor: UserRef, target: str) -> None:
        state = active_room()

        events = room.decide(
            RemoveParticipant(actor=actor, at=AT, participant_id=pid(target)), state
        )

        assert events == [
            ParticipantLeft(
                room_id=ROOM_ID,
                timestamp=AT,
                participant_id=pid(target),
                user_id=user(target).id,
                reason="removed",
                removed_by=actor.id,
            )
        ]
        after = then(state, *events)
        assert user(target).id not in after.members
        assert pid(target) not in after.participants

    def test_a_moderator_cannot_remove_another_moderator(self) -> None:
        state = then(active_room(), joined(ZED), promoted(ZED))

        command = RemoveParticipant(actor=MIA, at=AT, participant_id=pid("zed"))

        refused(command, state, PermissionDenied)

    def test_a_moderator_cannot_remove_themself_either(self) -> None:
        command = RemoveParticipant(actor=MIA, at=AT, participant_id=pid("mia"))

        refused(command, active_room(), PermissionDenied)

    @pytest.mark.parametrize("actor", [BOB, ZED], ids=["participant", "non-member"])
    def test_a_participant_or_stranger_cannot_remove_anyone(self, actor: UserRef) -> None:
        command = RemoveParticipant(actor=actor, at=AT, participant_id=pid("carol"))

        refused(command, active_room(), PermissionDenied)

    def test_an_unknown_participant_is_not_found(self) -> None:
        command = RemoveParticipant(actor=ALICE, at=AT, participant_id="part_nobody")

        error = refused(command, active_room(), ParticipantNotFound)
        assert error.code is ErrorCode.PARTICIPANT_NOT_FOUND

    def test_nobody_can_be_removed_from_a_closed_room(self) -> None:
        command = RemoveParticipant(actor=ALICE, at=AT, participant_id=pid("carol"))

        refused(command, closed_room(), RoomClosed)


class TestChangeParticipantRole:
    def test_the_organizer_promotes_a_participant_to_moderator(self) -> None:
        state = active_room()
        command = ChangeParticipantRole(
            actor=ALICE, at=AT, participant_id=pid("bob"), role=Role.MODERATOR
        )

        events = room.decide(command, state)

        assert events == [
            ParticipantUpdated(
                room_id=ROOM_ID,
                timestamp=AT,
                participant_id=pid("bob"),
                changes=ParticipantChanges(role=Role.MODERATOR),
                participant=participant(BOB, pid("bob"), Role.MODERATOR),
            )
        ]
        after = then(state, *events)
        assert after.participants[pid("bob")].role is Role.MODERATOR
        assert after.members == state.members

    def test_the_organizer_demotes_a_moderator(self) -> None:
        command = ChangeParticipantRole(
            actor=ALICE, at=AT, participant_id=pid("mia"), role=Role.PARTICIPANT
        )

        [event] = room.decide(command, active_room())

        assert isinstance(event, ParticipantUpdated)
        assert event.participant.role is Role.PARTICIPANT

    @pytest.mark.parametrize(("name", "role"), [("bob", Role.PARTICIPANT), ("mia", Role.MODERATOR)])
    def test_changing_to_the_same_role_changes_nothing(self, name: str, role: Role) -> None:
        command = ChangeParticipantRole(actor=ALICE, at=AT, participant_id=pid(name), role=role)

        assert room.decide(command, active_room()) == []

    @pytest.mark.parametrize("actor", [MIA, BOB, ZED], ids=["moderator", "participant", "other"])
    def test_only_the_organizer_may_change_roles(self, actor: UserRef) -> None:
        command = ChangeParticipantRole(
            actor=actor, at=AT, participant_id=pid("carol"), role=Role.MODERATOR
        )

        refused(command, active_room(), PermissionDenied)

    def test_an_unknown_participant_is_not_found(self) -> None:
        command = ChangeParticipantRole(
            actor=ALICE, at=AT, participant_id="part_nobody", role=Role.MODERATOR
        )

        refused(command, active_room(), ParticipantNotFound)

    def test_roles_are_frozen_in_a_closed_room(self) -> None:
        command = ChangeParticipantRole(
            actor=ALICE, at=AT, participant_id=pid("bob"), role=Role.MODERATOR
        )

        refused(command, closed_room(), RoomClosed)

    def test_a_promoted_participant_may_then_manage_prizes(self) -> None:
        state = then(active_room(), promoted(BOB))

        [event] = room.decide(CreatePrize(actor=BOB, at=AT, prize_id="prz_2", name="Car"), state)

        assert isinstance(event, PrizeCreated)


# ------------------------------------------------------------ prizes


class TestCreatePrize:
    @pytest.mark.parametrize("actor", [ALICE, MIA], ids=["organizer", "moderator"])
    def test_a_manager_creates_a_prize_with_all_of_its_quantity_left(self, actor: UserRef) -> None:
        state = active_room()
        command = CreatePrize(
            actor=actor,
            at=AT,
            prize_id="prz_car",
            name="Car",
            quantity=3,
            description="red",
            image_url="https://example.test/car.png",
        )

        events = room.decide(command, state)

        expected = structs.replace(
            prize("prz_car", 3, name="Car"),
            description="red",
            image_url="https://example.test/car.png",
        )
        assert events == [PrizeCreated(room_id=ROOM_ID, timestamp=AT, prize=expected)]
        assert then(state, *events).prizes["prz_car"] == expected

    @pytest.mark.parametrize("actor", [BOB, ZED], ids=["participant", "non-member"])
    def test_a_participant_or_stranger_cannot_create_prizes(self, actor: UserRef) -> None:
        command = CreatePrize(actor=actor, at=AT, prize_id="prz_car", name="Car")

        refused(command, active_room(), PermissionDenied)

    @pytest.mark.parametrize("quantity", [0, -1])
    def test_the_quantity_must_be_positive(self, quantity: int) -> None:
        command = CreatePrize(actor=ALICE, at=AT, prize_id="p", name="Car", quantity=quantity)

        error = refused(command, active_room(), InvalidPayload)
        assert error.code is ErrorCode.INVALID_PAYLOAD

    def test_a_blank_name_is_invalid(self) -> None:
        command = CreatePrize(actor=ALICE, at=AT, prize_id="p", name="")

        refused(command, active_room(), InvalidPayload)

    def test_a_closed_room_gets_no_new_prizes(self) -> None:
        command = CreatePrize(actor=ALICE, at=AT, prize_id="p", name="Car")

        refused(command, closed_room(), RoomClosed)


class TestUpdatePrize:
    def test_a_moderator_renames_a_prize(self) -> None:
        state = active_room()

        events = room.decide(UpdatePrize(actor=MIA, at=AT, prize_id=PRIZE_ID, name="OLED"), state)

        assert events == [
            PrizeUpdated(
                room_id=ROOM_ID,
                timestamp=AT,
                prize_id=PRIZE_ID,
                changes=PrizeChanges(name="OLED"),
                prize=structs.replace(prize(), name="OLED"),
            )
        ]
        assert then(state, *events).prizes[PRIZE_ID].name == "OLED"

    def test_a_new_quantity_keeps_the_awarded_count(self) -> None:
        state = with_winner(active_room(quantity=2))  # 1 awarded, 1 left
        command = UpdatePrize(actor=ALICE, at=AT, prize_id=PRIZE_ID, quantity=5)

        [event] = room.decide(command, state)

        assert isinstance(event, PrizeUpdated)
        assert event.changes == PrizeChanges(quantity=5)
        assert (event.prize.quantity, event.prize.quantity_remaining) == (5, 4)

    def test_the_quantity_may_drop_to_exactly_the_awarded_count(self) -> None:
        state = with_winner(active_room(quantity=2))
        command = UpdatePrize(actor=ALICE, at=AT, prize_id=PRIZE_ID, quantity=1)

        [event] = room.decide(command, state)

        assert isinstance(event, PrizeUpdated)
        assert (event.prize.quantity, event.prize.quantity_remaining) == (1, 0)

    def test_the_quantity_cannot_drop_below_the_awarded_count(self) -> None:
        state = with_winner(with_winner(active_room(quantity=3)), winner_id="win_2")
        command = UpdatePrize(actor=ALICE, at=AT, prize_id=PRIZE_ID, quantity=1)

        error = refused(command, state, PrizeQuantityTooLow)
        assert error.code is ErrorCode.PRIZE_QUANTITY_TOO_LOW
        assert error.details == {"awarded": 2, "quantity": 1}

    def test_a_quantity_below_one_is_invalid(self) -> None:
        command = UpdatePrize(actor=ALICE, at=AT, prize_id=PRIZE_ID, quantity=0)

        refused(command, active_room(), InvalidPayload)

    def test_updating_to_equal_values_changes_nothing(self) -> None:
        command = UpdatePrize(
            actor=ALICE,
            at=AT,
            prize_id=PRIZE_ID,
            name="TV",
            description=None,
            image_url=None,
            quantity=2,
        )

        assert room.decide(command, active_room()) == []

    def test_an_unknown_prize_is_not_found(self) -> None:
        command = UpdatePrize(actor=ALICE, at=AT, prize_id="prz_nope", name="X")

        error = refused(command, active_room(), PrizeNotFound)
        assert error.code is ErrorCode.PRIZE_NOT_FOUND

    @pytest.mark.parametrize("actor", [BOB, ZED], ids=["participant", "non-member"])
    def test_a_participant_or_stranger_cannot_update_prizes(self, actor: UserRef) -> None:
        command = UpdatePrize(actor=actor, at=AT, prize_id=PRIZE_ID, name="Mine")

        refused(command, active_room(), PermissionDenied)

    def test_prizes_are_frozen_in_a_closed_room(self) -> None:
        command = UpdatePrize(actor=ALICE, at=AT, prize_id=PRIZE_ID, name="X")

        refused(command, closed_room(), RoomClosed)


class TestDeletePrize:
    @pytest.mark.parametrize("actor", [ALICE, MIA], ids=["organizer", "moderator"])
    def test_a_manager_deletes_a_prize(self, actor: UserRef) -> None:
        state = active_room()

        events = room.decide(DeletePrize(actor=actor, at=AT, prize_id=PRIZE_ID), state)

        assert events == [PrizeDeleted(room_id=ROOM_ID, timestamp=AT, prize_id=PRIZE_ID)]
        assert PRIZE_ID not in then(state, *events).prizes

    def test_an_unknown_prize_is_not_found(self) -> None:
        command = DeletePrize(actor=ALICE, at=AT, prize_id="prz_nope")

        refused(command, active_room(), PrizeNotFound)

    @pytest.mark.parametrize("actor", [BOB, ZED], ids=["participant", "non-member"])
    def test_a_participant_or_stranger_cannot_delete_prizes(self, actor: UserRef) -> None:
        command = DeletePrize(actor=actor, at=AT, prize_id=PRIZE_ID)

        refused(command, active_room(), PermissionDenied)

    def test_prizes_cannot_be_deleted_from_a_closed_room(self) -> None:
        command = DeletePrize(actor=ALICE, at=AT, prize_id=PRIZE_ID)

        refused(command, closed_room(), RoomClosed)


# ------------------------------------------------------------ draws


class TestDrawWinner:
    def test_the_organizer_draws_the_first_eligible_participant_with_the_test_seed(self) -> None:
        """Eligible, sorted by participant id: part_bob, part_carol, part_dave (mia moderates)."""
        state = active_room()

        events = room.decide(draw(), state)

        assert events == [
            WinnerSelected(
                room_id=ROOM_ID,
                timestamp=AT,
                winner=Winner(
                    id=WINNER_ID,
                    participant_id=pid("bob"),
                    prize_id=PRIZE_ID,
                    participant=ParticipantRef(id=pid("bob"), user=BOB),
                    prize=PrizeRef(id=PRIZE_ID, name="TV", image_url=None),
                    created_at=AT,
                ),
                draw_number=1,
                eligible_count=3,
            )
        ]

    @pytest.mark.parametrize("seed", OTHER_SEEDS[:6], ids=lambda seed: seed.hex()[-2:])
    def test_the_pick_is_the_sorted_eligible_list_at_the_seeds_entropy_modulo_its_length(
        self, seed: bytes
    ) -> None:
        state = committed_to(active_room(), seed)

        [event] = room.decide(draw(seed=seed), state)

        assert isinstance(event, WinnerSelected)
        sorted_eligible = [pid("bob"), pid("carol"), pid("dave")]
        assert event.winner.participant_id == sorted_eligible[entropy(seed, 1) % 3]

    def test_different_seeds_pick_different_participants(self) -> None:
        picks = set()
        for seed in OTHER_SEEDS:
            [event] = room.decide(draw(seed=seed), committed_to(active_room(), seed))
            assert isinstance(event, WinnerSelected)
            picks.add(event.winner.participant_id)

        assert picks == {pid("bob"), pid("carol"), pid("dave")}

    def test_the_sort_is_by_participant_id_not_by_join_order_or_name(self) -> None:
        state = given(
            created(),
            joined(ZED, "part_a"),
            joined(BOB, "part_c"),
            joined(CAROL, "part_b"),
            prize_created(),
            status(RoomStatus.DRAFT, RoomStatus.ACTIVE),
        )

        picks = set()
        for seed in OTHER_SEEDS:
            [event] = room.decide(draw(seed=seed), committed_to(state, seed))
            assert isinstance(event, WinnerSelected)
            assert (
                event.winner.participant_id == ["part_a", "part_b", "part_c"][entropy(seed, 1) % 3]
            )
            picks.add(event.winner.participant_id)

        assert picks == {"part_a", "part_b", "part_c"}

    def test_a_draw_uses_up_one_of_the_prize_and_counts_the_draw(self) -> None:
        state = with_winner(active_room(quantity=2))

        assert state.prizes[PRIZE_ID].quantity_remaining == 1
        assert state.draws == 1
        assert list(state.winners) == [WINNER_ID]

    def test_current_winners_are_not_eligible(self) -> None:
        state = with_winner(active_room(quantity=3))  # bob wins

        [event] = room.decide(draw(winner_id="win_2"), state)

        assert isinstance(event, WinnerSelected)
        assert event.winner.participant_id == pid("carol")
        assert event.eligible_count == 2
        assert event.draw_number == 2

    def test_a_winner_who_left_and_rejoined_is_still_not_eligible(self) -> None:
        """Wins follow the user, not the participation."""
        state = with_winner(active_room(quantity=3))  # bob wins
        state = then(
            state,
            ParticipantLeft(
                room_id=ROOM_ID, timestamp=AT, participant_id=pid("bob"), user_id=BOB.id
            ),
            joined(BOB, "part_aaa_bob"),
        )

        [event] = room.decide(draw(winner_id="win_2"), state)

        assert isinstance(event, WinnerSelected)
        assert event.winner.participant_id == pid("carol")
        assert event.eligible_count == 2

    def test_moderators_are_not_eligible(self) -> None:
        state = given(
            created(),
            joined(MIA),
            promoted(MIA),
            joined(BOB),
            prize_created(),
            status(RoomStatus.DRAFT, RoomStatus.ACTIVE),
        )

        for seed in OTHER_SEEDS[:4]:
            [event] = room.decide(draw(seed=seed), committed_to(state, seed))
            assert isinstance(event, WinnerSelected)
            assert event.winner.participant_id == pid("bob")
            assert event.eligible_count == 1

    def test_a_room_of_only_moderators_and_winners_has_nobody_to_draw(self) -> None:
        state = given(
            created(),
            joined(MIA),
            promoted(MIA),
            joined(BOB),
            prize_created(quantity=2),
            status(RoomStatus.DRAFT, RoomStatus.ACTIVE),
        )
        state = with_winner(state)  # bob, the only plain participant, wins

        error = refused(draw(winner_id="win_2"), state, NoEligibleParticipants)
        assert error.code is ErrorCode.NO_ELIGIBLE_PARTICIPANTS

    def test_an_empty_room_has_nobody_to_draw(self) -> None:
        state = given(created(), prize_created(), status(RoomStatus.DRAFT, RoomStatus.ACTIVE))

        refused(draw(), state, NoEligibleParticipants)

    def test_a_draft_room_makes_no_draws(self) -> None:
        state = given(created(), joined(BOB), prize_created())

        error = refused(draw(), state, RoomNotActive)
        assert error.code is ErrorCode.ROOM_NOT_ACTIVE

    def test_an_unknown_prize_is_not_found(self) -> None:
        command = DrawWinner(actor=ALICE, at=AT, prize_id="prz_nope", winner_id="w", seed=SEED)

        refused(command, active_room(), PrizeNotFound)

    def test_a_prize_with_nothing_left_is_exhausted(self) -> None:
        state = with_winner(active_room(quantity=1))

        error = refused(draw(winner_id="win_2"), state, PrizeExhausted)
        assert error.code is ErrorCode.PRIZE_EXHAUSTED

    @pytest.mark.parametrize("actor", [MIA, BOB, ZED], ids=["moderator", "participant", "other"])
    def test_only_the_organizer_may_draw(self, actor: UserRef) -> None:
        refused(draw(actor), active_room(), PermissionDenied)


class TestRemoveWinner:
    def test_removing_a_winner_gives_the_prize_back(self) -> None:
        state = with_winner(active_room(quantity=2))

        events = room.decide(RemoveWinner(actor=ALICE, at=AT, winner_id=WINNER_ID), state)

        assert events == [
            WinnerRemoved(
                room_id=ROOM_ID,
                timestamp=AT,
                winner_id=WINNER_ID,
                participant_id=pid("bob"),
                prize_id=PRIZE_ID,
            )
        ]
        after = then(state, *events)
        assert after.winners == {}
        assert after.prizes[PRIZE_ID].quantity_remaining == 2
        assert after.draws == 1, "the draw counter never goes back"

    def test_a_removed_winner_is_eligible_again(self) -> None:
        state = with_winner(active_room(quantity=2))
        state = then(
            state, *room.decide(RemoveWinner(actor=ALICE, at=AT, winner_id=WINNER_ID), state)
        )

        [event] = room.decide(draw(winner_id="win_2"), state)

        assert isinstance(event, WinnerSelected)
        assert event.winner.participant_id == pid("bob")
        assert event.eligible_count == 3

    def test_the_winner_of_a_deleted_prize_can_still_be_removed(self) -> None:
        state = with_winner(active_room())
        state = then(state, PrizeDeleted(room_id=ROOM_ID, timestamp=AT, prize_id=PRIZE_ID))

        events = room.decide(RemoveWinner(actor=ALICE, at=AT, winner_id=WINNER_ID), state)

        after = then(state, *events)
        assert after.winners == {}
        assert after.prizes == {}

    def test_an_unknown_winner_is_not_found(self) -> None:
        error = refused(
            RemoveWinner(actor=ALICE, at=AT, winner_id="win_nope"), active_room(), WinnerNotFound
        )
        assert error.code is ErrorCode.WINNER_NOT_FOUND

    @pytest.mark.parametrize("actor", [MIA, BOB, ZED], ids=["moderator", "participant", "other"])
    def test_only_the_organizer_may_remove_a_winner(self, actor: UserRef) -> None:
        command = RemoveWinner(actor=actor, at=AT, winner_id=WINNER_ID)

        refused(command, with_winner(active_room()), PermissionDenied)

    def test_winners_are_final_once_the_room_is_closed(self) -> None:
        state = then(with_winner(active_room()), status(RoomStatus.ACTIVE, RoomStatus.CLOSED))

        command = RemoveWinner(actor=ALICE, at=AT, winner_id=WINNER_ID)

        refused(command, state, RoomClosed)


# ------------------------------------------------------------ the permission table

ORGANIZER, MODERATOR, PARTICIPANT, NON_MEMBER = "organizer", "moderator", "participant", "other"
ACTORS = {ORGANIZER: ALICE, MODERATOR: MIA, PARTICIPANT: BOB, NON_MEMBER: ZED}

PERMISSIONS: list[tuple[str, Callable[[UserRef], Command], set[str]]] = [
    ("update room", lambda a: UpdateRoom(actor=a, at=AT, name="New"), {ORGANIZER, MODERATOR}),
    (
        "change status",
        lambda a: ChangeRoomStatus(actor=a, at=AT, status=RoomStatus.CLOSED, seed=SEED),
        {ORGANIZER},
    ),
    ("delete room", lambda a: DeleteRoom(actor=a, at=AT, seed=SEED), {ORGANIZER}),
    (
        "remove a participant",
        lambda a: RemoveParticipant(actor=a, at=AT, participant_id=pid("carol")),
        {ORGANIZER, MODERATOR},
    ),
    (
        "change a role",
        lambda a: ChangeParticipantRole(
            actor=a, at=AT, participant_id=pid("carol"), role=Role.MODERATOR
        ),
        {ORGANIZER},
    ),
    (
        "create a prize",
        lambda a: CreatePrize(actor=a, at=AT, prize_id="prz_new", name="Car"),
        {ORGANIZER, MODERATOR},
    ),
    (
        "update a prize",
        lambda a: UpdatePrize(actor=a, at=AT, prize_id=PRIZE_ID, name="Big"),
        {ORGANIZER, MODERATOR},
    ),
    (
        "delete a prize",
        lambda a: DeletePrize(actor=a, at=AT, prize_id=PRIZE_ID),
        {ORGANIZER, MODERATOR},
    ),
    ("draw", lambda a: draw(a, winner_id="win_2"), {ORGANIZER}),
    (
        "remove a winner",
        lambda a: RemoveWinner(actor=a, at=AT, winner_id=WINNER_ID),
        {ORGANIZER},
    ),
]


class TestPermissionTable:
    """The table in ``roomcast.domain.room``'s docstring, row by row (join/leave are above)."""

    @pytest.mark.parametrize(
        ("action", "make", "allowed", "who"),
        [
            pytest.param(action, make, allowed, who, id=f"{action}-{who}")
            for action, make, allowed in PERMISSIONS
            for who in ACTORS
        ],
    )
    def test_each_role_may_do_exactly_what_the_table_says(
        self,
        action: str,
        make: Callable[[UserRef], Command],
        allowed: set[str],
        who: str,
    ) -> None:
        state = with_winner(active_room(quantity=3))
        command = make(ACTORS[who])

        if who in allowed:
            events = room.decide(command, state)
            assert len(events) == 1, f"{who} should be allowed to {action}"
        else:
            refused(command, state, PermissionDenied)


# ------------------------------------------------------------ evolve


class TestMembersIndex:
    """``members`` (user id → participant id) follows every membership event."""

    def test_join_leave_remove_and_role_changes_keep_members_in_sync(self) -> None:
        state = active_room()
        assert state.members == {
            MIA.id: pid("mia"),
            BOB.id: pid("bob"),
            CAROL.id: pid("carol"),
            DAVE.id: pid("dave"),
        }

        steps: list[Command] = [
            JoinRoom(actor=ZED, at=AT, participant_id="part_zed"),
            LeaveRoom(actor=BOB, at=AT),
            RemoveParticipant(actor=MIA, at=AT, participant_id=pid("carol")),
            ChangeParticipantRole(
                actor=ALICE, at=AT, participant_id=pid("dave"), role=Role.MODERATOR
            ),
            JoinRoom(actor=BOB, at=AT, participant_id="part_bob_2"),
        ]
        for command in steps:
            state = then(state, *room.decide(command, state))
            assert state.members == {p.user_id: p.id for p in state.participants.values()}

        assert state.members == {
            MIA.id: pid("mia"),
            DAVE.id: pid("dave"),
            ZED.id: "part_zed",
            BOB.id: "part_bob_2",
        }
        assert state.participants[pid("dave")].role is Role.MODERATOR
        assert state.can_read(ALICE.id)
        assert state.can_read(ZED.id)
        assert not state.can_read(CAROL.id)

    def test_evolve_never_changes_the_state_it_was_given(self) -> None:
        state = active_room()
        members, participants = dict(state.members), dict(state.participants)

        room.evolve(state, joined(ZED))
        room.evolve(
            state,
            ParticipantLeft(
                room_id=ROOM_ID, timestamp=AT, participant_id=pid("bob"), user_id=BOB.id
            ),
        )

        assert state.members == members
        assert state.participants == participants
