"""Given/when/then helpers for the room decider: a fixed clock, users, events, states.

Names used throughout: alice is the organizer, mia a moderator, bob, carol and
dave plain participants, zed a stranger. A user's participation id is
``part_<name>``; the standard prize is ``prz_tv``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from roomcast.domain import draw, room
from roomcast.domain.events import (
    Event,
    ParticipantChanges,
    ParticipantJoined,
    ParticipantUpdated,
    PrizeCreated,
    RoomCreated,
    RoomStatusChanged,
)
from roomcast.domain.state import (
    Participant,
    Prize,
    Role,
    Room,
    RoomInfo,
    RoomStatus,
    UserRef,
)

AT = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
"""The one clock value every command and event in these tests carries."""

ROOM_ID = "room_1"
PRIZE_ID = "prz_tv"

SEED = (1497).to_bytes(draw.SEED_BYTES, "big")
"""The room's secret draw seed: ``status`` commits to it on activation and reveals it on
closing. Chosen so that draws 1 to 3 have ``entropy ≡ 0 (mod 12)``: each picks the FIRST
eligible participant whenever 1, 2, 3, 4 or 6 are eligible (test_draw_seed.py checks it)."""


def user(name: str) -> UserRef:
    return UserRef(id=f"usr_{name}", name=name.title())


def pid(name: str) -> str:
    """The participation id the builders give ``name``."""
    return f"part_{name}"


ALICE = user("alice")
MIA = user("mia")
BOB = user("bob")
CAROL = user("carol")
DAVE = user("dave")
ZED = user("zed")


def given(*events: Event) -> Room:
    """The state after ``events``, folded by the real ``evolve``."""
    state = room.fold(list(events))
    assert state is not None
    return state


def then(state: Room, *events: Event) -> Room:
    """``state`` moved on by ``events`` (a ``when`` result or more history)."""
    after = room.fold(list(events), state)
    assert after is not None
    return after


# ---------------------------------------------------------------- events


def created(organizer: UserRef = ALICE, name: str = "Lottery") -> RoomCreated:
    info = RoomInfo(
        id=ROOM_ID,
        name=name,
        description=None,
        status=RoomStatus.DRAFT,
        settings={},
        organizer_id=organizer.id,
        created_at=AT,
    )
    return RoomCreated(room_id=ROOM_ID, timestamp=AT, room=info)


def status(old: RoomStatus, new: RoomStatus) -> RoomStatusChanged:
    """Activating commits to ``SEED``; closing an active room reveals it."""
    return RoomStatusChanged(
        room_id=ROOM_ID,
        timestamp=AT,
        old_status=old,
        new_status=new,
        seed_commitment=draw.commitment(SEED) if new is RoomStatus.ACTIVE else None,
        seed_reveal=SEED.hex() if (old, new) == (RoomStatus.ACTIVE, RoomStatus.CLOSED) else None,
    )


def participant(who: UserRef, participant_id: str, role: Role = Role.PARTICIPANT) -> Participant:
    return Participant(id=participant_id, user_id=who.id, role=role, user=who, joined_at=AT)


def joined(who: UserRef, participant_id: str | None = None) -> ParticipantJoined:
    participant_id = participant_id or pid(who.name.lower())
    return ParticipantJoined(
        room_id=ROOM_ID, timestamp=AT, participant=participant(who, participant_id)
    )


def promoted(who: UserRef) -> ParticipantUpdated:
    participant_id = pid(who.name.lower())
    return ParticipantUpdated(
        room_id=ROOM_ID,
        timestamp=AT,
        participant_id=participant_id,
        changes=ParticipantChanges(role=Role.MODERATOR),
        participant=participant(who, participant_id, Role.MODERATOR),
    )


def prize(prize_id: str = PRIZE_ID, quantity: int = 2, name: str = "TV") -> Prize:
    return Prize(
        id=prize_id,
        name=name,
        description=None,
        image_url=None,
        quantity=quantity,
        quantity_remaining=quantity,
        created_at=AT,
    )


def prize_created(prize_id: str = PRIZE_ID, quantity: int = 2) -> PrizeCreated:
    return PrizeCreated(room_id=ROOM_ID, timestamp=AT, prize=prize(prize_id, quantity))


# ---------------------------------------------------------------- states


def draft_room() -> Room:
    """Just created by alice: draft, nobody else in it."""
    return given(created())


def active_room(quantity: int = 2) -> Room:
    """Active; mia moderates; bob, carol and dave participate; prize ``prz_tv``."""
    return given(
        created(),
        joined(MIA),
        promoted(MIA),
        joined(BOB),
        joined(CAROL),
        joined(DAVE),
        prize_created(quantity=quantity),
        status(RoomStatus.DRAFT, RoomStatus.ACTIVE),
    )


def closed_room() -> Room:
    """``active_room`` closed by alice."""
    return then(active_room(), status(RoomStatus.ACTIVE, RoomStatus.CLOSED))
