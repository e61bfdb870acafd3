"""The room decider: ``decide(command, state) -> events`` and ``evolve(state, event) -> state``.

A room is one stream and the consistency boundary: every rule below reads only
that room's state. Both functions are pure (no I/O, clock or randomness: the
command brings ids, time and the draw seed), so the store can replay, cache and
retry them freely. Refusals are raised as ``roomcast.domain.errors.Rejected``.

Who may do what:

============================  =========  =========  ===========  ==========
action                        organizer  moderator  participant  non-member
============================  =========  =========  ===========  ==========
update name/description/...   yes        yes        no           no
change status, delete room    yes        no         no           no
join                          no (is)    no (is)    no (is)      yes
leave                         —          yes        yes          no
remove a participant          yes        plain only no           no
change a participant's role   yes        no         no           no
create/update/delete prizes   yes        yes        no           no
draw / remove a winner        yes        no         no           no
============================  =========  =========  ===========  ==========
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from msgspec import UNSET, structs

from roomcast.domain import apps, draw, quiz
from roomcast.domain.commands import (
    ChangeParticipantRole,
    ChangeRoomStatus,
    CloseQuestion,
    Command,
    CreatePrize,
    CreateRoom,
    DeletePrize,
    DeleteRoom,
    DrawWinner,
    JoinRoom,
    LeaveRoom,
    PublishAppEvent,
    PublishQuestion,
    RemoveParticipant,
    RemoveWinner,
    SubmitAnswer,
    UpdatePrize,
    UpdateRoom,
)
from roomcast.domain.decider import Decider
from roomcast.domain.errors import (
    AlreadyParticipant,
    InvalidPayload,
    InvalidStatusTransition,
    NoEligibleParticipants,
    NotParticipant,
    ParticipantNotFound,
    PermissionDenied,
    PrizeExhausted,
    PrizeNotFound,
    PrizeQuantityTooLow,
    RoomNotActive,
    RoomNotFound,
    VersionConflict,
    WinnerNotFound,
)
from roomcast.domain.events import (
    AnswerResult,
    AppEvent,
    Event,
    ParticipantChanges,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    PrizeChanges,
    PrizeCreated,
    PrizeDeleted,
    PrizeUpdated,
    QuestionClosed,
    QuestionPublished,
    RoomChanges,
    RoomCreated,
    RoomDeleted,
    RoomStatusChanged,
    RoomUpdated,
    WinnerRemoved,
    WinnerSelected,
    decode_event,
)
from roomcast.domain.rules import (
    require_manager,
    require_name,
    require_new_id,
    require_open,
    require_organizer,
)
from roomcast.domain.state import (
    ROOM_STATE_VERSION,
    Participant,
    ParticipantRef,
    Prize,
    PrizeRef,
    Role,
    Room,
    RoomInfo,
    RoomStatus,
    Winner,
)

__all__ = ["ROOMS", "State", "decide", "evolve", "fold", "initial_state", "is_terminal"]

State = Room | None
"""``None`` until the room is created."""

_FORWARD: Mapping[RoomStatus, frozenset[RoomStatus]] = {
    RoomStatus.DRAFT: frozenset({RoomStatus.ACTIVE, RoomStatus.CLOSED}),
    RoomStatus.ACTIVE: frozenset({RoomStatus.CLOSED}),
    RoomStatus.CLOSED: frozenset(),
}

K = TypeVar("K")
V = TypeVar("V")


def initial_state() -> State:
    return None


def is_terminal(state: State) -> bool:
    """A deleted room accepts no command ever again."""
    return state is not None and state.deleted


def fold(events: list[Event], state: State = None) -> State:
    for event in events:
        state = evolve(state, event)
    return state


# ---------------------------------------------------------------- decide


def decide(command: Command, state: State) -> list[Event]:
    """The events ``command`` causes in a room in ``state``; raises ``Rejected`` if refused.

    An empty list means "accepted, nothing changes" (an update to equal values).
    """
    if isinstance(command, CreateRoom):
        return _create_room(command, state)
    room = _existing(state)
    match command:
        case UpdateRoom():
            return _update_room(command, room)
        case ChangeRoomStatus():
            return _change_status(command, room)
        case DeleteRoom():
            require_organizer(room, command.actor.id, "room:delete")
            reveal = _reveal(room, command.seed) if room.info.status is RoomStatus.ACTIVE else None
            return [RoomDeleted(room_id=room.info.id, timestamp=command.at, seed_reveal=reveal)]
        case JoinRoom():
            return _join(command, room)
        case LeaveRoom():
            return _leave(command, room)
        case RemoveParticipant():
            return _remove_participant(command, room)
        case ChangeParticipantRole():
            return _change_role(command, room)
        case CreatePrize():
            return _create_prize(command, room)
        case UpdatePrize():
            return _update_prize(command, room)
        case DeletePrize():
            require_manager(room, command.actor.id, "prize:delete")
            require_open(room)
            _prize(room, command.prize_id)
            return [
                PrizeDeleted(room_id=room.info.id, timestamp=command.at, prize_id=command.prize_id)
            ]
        case DrawWinner():
            return _draw(command, room)
        case RemoveWinner():
            return _remove_winner(command, room)
        case PublishAppEvent():
            return apps.publish(command, room)
        case PublishQuestion():
            return quiz.publish(command, room)
        case SubmitAnswer():
            return quiz.submit(command, room)
        case CloseQuestion():
            return quiz.close(command, room)
    raise AssertionError(f"unhandled command {command!r}")  # pragma: no cover


def _create_room(command: CreateRoom, state: State) -> list[Event]:
    if state is not None:
        raise VersionConflict("room already exists", {"roomId": command.room_id})
    require_name(command.name)
    info = RoomInfo(
        id=command.room_id,
        name=command.name,
        description=command.description,
        status=RoomStatus.DRAFT,
        settings=command.settings,
        organizer_id=command.actor.id,
        created_at=command.at,
    )
    return [RoomCreated(room_id=info.id, timestamp=command.at, room=info)]


def _update_room(command: UpdateRoom, room: Room) -> list[Event]:
    require_manager(room, command.actor.id, "room:update")
    require_open(room)
    if command.name is not UNSET:
        require_name(command.name)
    changes = _changed(
        {
            "name": command.name,
            "description": command.description,
            "settings": command.settings,
        },
        {
            "name": room.info.name,
            "description": room.info.description,
            "settings": room.info.settings,
        },
    )
    if not changes:
        return []
    info = structs.replace(room.info, **changes)
    return [
        RoomUpdated(
            room_id=info.id, timestamp=command.at, changes=RoomChanges(**changes), room=info
        )
    ]


def _change_status(command: ChangeRoomStatus, room: Room) -> list[Event]:
    require_organizer(room, command.actor.id, "room:status")
    old = room.info.status
    if command.status not in _FORWARD[old]:
        raise InvalidStatusTransition(
            f"cannot change status from {old} to {command.status}",
            {"from": str(old), "to": str(command.status)},
        )
    commitment: str | None = None
    reveal: str | None = None
    if command.status is RoomStatus.ACTIVE:
        # The commitment is fixed before any draw: sha256 of the secret seed.
        if command.seed is None or len(command.seed) != draw.SEED_BYTES:
            raise draw.SeedMismatch(
                f"activating {room.info.id} needs a {draw.SEED_BYTES}-byte seed"
            )
        commitment = draw.commitment(command.seed)
    elif old is RoomStatus.ACTIVE:
        reveal = _reveal(room, command.seed)
    return [
        RoomStatusChanged(
            room_id=room.info.id,
            timestamp=command.at,
            old_status=old,
            new_status=command.status,
            seed_commitment=commitment,
            seed_reveal=reveal,
        )
    ]


def _reveal(room: Room, seed: bytes | None) -> str | None:
    """The seed in hex, for an active room leaving that status (closed or deleted), so
    anyone holding the log can recompute every draw. ``None`` if it never committed."""
    if room.seed_commitment is None:
        return None
    if not draw.seed_matches(seed, room.seed_commitment):
        raise draw.SeedMismatch(f"the seed for {room.info.id} does not match its commitment")
    return seed.hex()


def _join(command: JoinRoom, room: Room) -> list[Event]:
    require_open(room)
    user = command.actor
    if user.id == room.info.organizer_id:
        raise AlreadyParticipant("the organizer is a member of the room already")
    if user.id in room.members:
        raise AlreadyParticipant("already a participant", {"participantId": room.members[user.id]})
    require_new_id(room.participants, command.participant_id)
    participant = Participant(
        id=command.participant_id,
        user_id=user.id,
        role=Role.PARTICIPANT,
        user=user,
        joined_at=command.at,
    )
    return [ParticipantJoined(room_id=room.info.id, timestamp=command.at, participant=participant)]


def _leave(command: LeaveRoom, room: Room) -> list[Event]:
    require_open(room)
    participant = room.member(command.actor.id)
    if participant is None:
        raise NotParticipant("not a participant of this room")
    return [
        ParticipantLeft(
            room_id=room.info.id,
            timestamp=command.at,
            participant_id=participant.id,
            user_id=participant.user_id,
        )
    ]


def _remove_participant(command: RemoveParticipant, room: Room) -> list[Event]:
    actor = command.actor.id
    require_manager(room, actor, "participant:remove")
    require_open(room)
    target = _participant(room, command.participant_id)
    if actor != room.info.organizer_id and target.role is not Role.PARTICIPANT:
        raise PermissionDenied(
            "moderators may only remove plain participants",
            {"action": "participant:remove", "roomId": room.info.id},
        )
    return [
        ParticipantLeft(
            room_id=room.info.id,
            timestamp=command.at,
            participant_id=target.id,
            user_id=target.user_id,
            reason="removed",
            removed_by=actor,
        )
    ]


def _change_role(command: ChangeParticipantRole, room: Room) -> list[Event]:
    require_organizer(room, command.actor.id, "participant:update")
    require_open(room)
    target = _participant(room, command.participant_id)
    if target.role is command.role:
        return []
    updated = structs.replace(target, role=command.role)
    return [
        ParticipantUpdated(
            room_id=room.info.id,
            timestamp=command.at,
            participant_id=target.id,
            changes=ParticipantChanges(role=command.role),
            participant=updated,
        )
    ]


def _create_prize(command: CreatePrize, room: Room) -> list[Event]:
    require_manager(room, command.actor.id, "prize:create")
    require_open(room)
    require_name(command.name)
    if command.quantity < 1:
        raise InvalidPayload("quantity must be at least 1", {"field": "quantity"})
    require_new_id(room.prizes, command.prize_id)
    prize = Prize(
        id=command.prize_id,
        name=command.name,
        description=command.description,
        image_url=command.image_url,
        quantity=command.quantity,
        quantity_remaining=command.quantity,
        created_at=command.at,
    )
    return [PrizeCreated(room_id=room.info.id, timestamp=command.at, prize=prize)]


def _update_prize(command: UpdatePrize, room: Room) -> list[Event]:
    require_manager(room, command.actor.id, "prize:update")
    require_open(room)
    prize = _prize(room, command.prize_id)
    if command.name is not UNSET:
        require_name(command.name)
    changes = _changed(
        {
            "name": command.name,
            "description": command.description,
            "image_url": command.image_url,
            "quantity": command.quantity,
        },
        {
            "name": prize.name,
            "description": prize.description,
            "image_url": prize.image_url,
            "quantity": prize.quantity,
        },
    )
    if not changes:
        return []
    fields: dict[str, object] = dict(changes)
    if "quantity" in changes:
        quantity = changes["quantity"]
        assert isinstance(quantity, int)
        awarded = prize.quantity - prize.quantity_remaining
        if quantity < 1:
            raise InvalidPayload("quantity must be at least 1", {"field": "quantity"})
        if quantity < awarded:
            raise PrizeQuantityTooLow(
                f"{awarded} already awarded; quantity cannot be lower",
                {"awarded": awarded, "quantity": quantity},
            )
        fields["quantity_remaining"] = quantity - awarded
    updated = structs.replace(prize, **fields)
    return [
        PrizeUpdated(
            room_id=room.info.id,
            timestamp=command.at,
            prize_id=prize.id,
            changes=PrizeChanges(**changes),
            prize=updated,
        )
    ]


def _draw(command: DrawWinner, room: Room) -> list[Event]:
    require_organizer(room, command.actor.id, "winner:draw")
    if room.info.status is not RoomStatus.ACTIVE:
        raise RoomNotActive(
            f"draws need an active room; this one is {room.info.status}",
            {"status": str(room.info.status)},
        )
    prize = _prize(room, command.prize_id)
    if prize.quantity_remaining < 1:
        raise PrizeExhausted("no quantity left for this prize", {"prizeId": prize.id})
    eligible = room.eligible()
    if not eligible:
        raise NoEligibleParticipants("no participant can win this draw")
    if room.seed_commitment is None:
        raise RoomNotActive(
            "this room became active before draws were verifiable (no seed commitment); "
            "draws need a room activated since",
            {"status": str(room.info.status)},
        )
    if not draw.seed_matches(command.seed, room.seed_commitment):
        raise draw.SeedMismatch(f"the seed for {room.info.id} does not match its commitment")
    draw_number = room.draws + 1
    chosen = draw.pick(eligible, draw.entropy(command.seed, draw_number))
    winner = Winner(
        id=command.winner_id,
        participant_id=chosen.id,
        prize_id=prize.id,
        participant=ParticipantRef(id=chosen.id, user=chosen.user),
        prize=PrizeRef(id=prize.id, name=prize.name, image_url=prize.image_url),
        created_at=command.at,
    )
    return [
        WinnerSelected(
            room_id=room.info.id,
            timestamp=command.at,
            winner=winner,
            draw_number=draw_number,
            eligible_count=len(eligible),
        )
    ]


def _remove_winner(command: RemoveWinner, room: Room) -> list[Event]:
    require_organizer(room, command.actor.id, "winner:remove")
    require_open(room)
    winner = room.winners.get(command.winner_id)
    if winner is None:
        raise WinnerNotFound("no such winner", {"winnerId": command.winner_id})
    return [
        WinnerRemoved(
            room_id=room.info.id,
            timestamp=command.at,
            winner_id=winner.id,
            participant_id=winner.participant_id,
            prize_id=winner.prize_id,
        )
    ]


# ------------------------------------------------------------ rule helpers


def _existing(state: State) -> Room:
    if state is None or state.deleted:
        raise RoomNotFound("room not found")
    return state


def _participant(room: Room, participant_id: str) -> Participant:
    participant = room.participants.get(participant_id)
    if participant is None:
        raise ParticipantNotFound("no such participant", {"participantId": participant_id})
    return participant


def _prize(room: Room, prize_id: str) -> Prize:
    prize = room.prizes.get(prize_id)
    if prize is None:
        raise PrizeNotFound("no such prize", {"prizeId": prize_id})
    return prize


def _changed(wanted: Mapping[str, object], current: Mapping[str, object]) -> dict[str, Any]:
    """The requested fields (not UNSET) whose value differs from the current one."""
    return {
        key: value for key, value in wanted.items() if value is not UNSET and value != current[key]
    }


# ---------------------------------------------------------------- evolve


def evolve(state: State, event: Event) -> State:
    """The state after ``event``. Trusts the event: it was decided against this state."""
    if isinstance(event, RoomCreated):
        return Room(info=event.room)
    room = state
    assert room is not None, f"{event.room_id}: {type(event).__name__} before room:created"
    match event:
        case RoomUpdated():
            return structs.replace(room, info=event.room)
        case RoomStatusChanged():
            info = structs.replace(room.info, status=event.new_status)
            if event.seed_commitment is None:
                return structs.replace(room, info=info)
            return structs.replace(room, info=info, seed_commitment=event.seed_commitment)
        case RoomDeleted():
            return structs.replace(room, deleted=True)
        case ParticipantJoined():
            p = event.participant
            return structs.replace(
                room,
                participants=_put(room.participants, p.id, p),
                members=_put(room.members, p.user_id, p.id),
            )
        case ParticipantLeft():
            return structs.replace(
                room,
                participants=_drop(room.participants, event.participant_id),
                members=_drop(room.members, event.user_id),
            )
        case ParticipantUpdated():
            return structs.replace(
                room, participants=_put(room.participants, event.participant_id, event.participant)
            )
        case PrizeCreated():
            return structs.replace(room, prizes=_put(room.prizes, event.prize.id, event.prize))
        case PrizeUpdated():
            return structs.replace(room, prizes=_put(room.prizes, event.prize_id, event.prize))
        case PrizeDeleted():
            return structs.replace(room, prizes=_drop(room.prizes, event.prize_id))
        case WinnerSelected():
            winner = event.winner
            prizes = room.prizes
            prize = prizes.get(winner.prize_id)
            if prize is not None:
                prizes = _put(
                    prizes,
                    prize.id,
                    structs.replace(prize, quantity_remaining=prize.quantity_remaining - 1),
                )
            return structs.replace(
                room,
                winners=_put(room.winners, winner.id, winner),
                prizes=prizes,
                draws=room.draws + 1,
            )
        case WinnerRemoved():
            prizes = room.prizes
            prize = prizes.get(event.prize_id)
            if prize is not None:
                prizes = _put(
                    prizes,
                    prize.id,
                    structs.replace(prize, quantity_remaining=prize.quantity_remaining + 1),
                )
            return structs.replace(
                room, winners=_drop(room.winners, event.winner_id), prizes=prizes
            )
        case QuestionPublished() | AnswerResult() | QuestionClosed():
            return quiz.evolve(room, event)
        case AppEvent():
            return room  # the app's business: nothing the room's rules look at
    raise AssertionError(f"unhandled event {event!r}")  # pragma: no cover


def _put(mapping: dict[K, V], key: K, value: V) -> dict[K, V]:
    """A copy with ``key`` set: states are values, never mutated in place."""
    copy = dict(mapping)
    copy[key] = value
    return copy


def _drop(mapping: dict[K, V], key: K) -> dict[K, V]:
    copy = dict(mapping)
    copy.pop(key, None)
    return copy


ROOMS: Decider[Command, Event, State] = Decider(
    name="room",
    decide=decide,
    evolve=evolve,
    decode_event=decode_event,
    state_type=Room,
    state_version=ROOM_STATE_VERSION,
)
"""Rooms as the store and the command service see them."""
