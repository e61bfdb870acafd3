"""Ids come from the caller: decide refuses one already in use instead of overwriting."""

from __future__ import annotations

import pytest

from roomcast.domain import commands, room
from roomcast.domain.errors import ErrorCode, VersionConflict

from .builders import ALICE, AT, PRIZE_ID, active_room, user


def test_a_prize_id_in_use_is_refused():
    state = active_room()
    with pytest.raises(VersionConflict) as refused:
        room.decide(
            commands.CreatePrize(actor=ALICE, at=AT, prize_id=PRIZE_ID, name="again"), state
        )
    assert refused.value.code is ErrorCode.CONFLICT


def test_a_participant_id_in_use_is_refused():
    state = active_room()
    taken = next(iter(state.participants))
    with pytest.raises(VersionConflict):
        room.decide(commands.JoinRoom(actor=user("newcomer"), at=AT, participant_id=taken), state)
