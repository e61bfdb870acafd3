"""Draws, recomputed from the log: pure, one event at a time, in seq order.

Folds the events that decide who may win (joins, leaves, role changes, wins
and their removals) and checks each ``winner:selected`` against the formula of
``roomcast.domain.draw``: the room must have committed to a seed when it became
active, and, once the seed is known, the winner must be
``eligible[entropy(seed, drawNumber) % len(eligible)]``.

The eligible list is kept sorted incrementally (``bisect``) instead of being
rebuilt at every draw as ``Room.eligible`` does, so a room with many
participants and many draws verifies in linear time; a property test checks that
both agree (tests/unit/test_draw_replay.py). docs/audit.md states the rules.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter

from roomcast.domain import draw
from roomcast.domain.events import (
    Event,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    RoomCreated,
    RoomDeleted,
    RoomStatusChanged,
    WinnerRemoved,
    WinnerSelected,
)
from roomcast.domain.state import Role, RoomStatus

__all__ = ["DRAW_TYPES", "Draws"]

DRAW_TYPES = frozenset(
    {
        "room:created",
        "room:status_changed",
        "room:deleted",
        "participant:joined",
        "participant:left",
        "participant:updated",
        "winner:selected",
        "winner:removed",
    }
)
"""The event types that matter to draws; the others need not even be decoded."""

_FORWARD = {
    RoomStatus.DRAFT: {RoomStatus.ACTIVE, RoomStatus.CLOSED},
    RoomStatus.ACTIVE: {RoomStatus.CLOSED},
    RoomStatus.CLOSED: set(),
}


class Draws:
    """Feed it a room's events (those in ``DRAW_TYPES``); it names the first broken rule.

    ``revealed_seed`` is the seed the room's log reveals (if it does), read
    ahead of time so draws are checked as they stream past: draws before the
    reveal cannot be recomputed otherwise. It is itself checked against the
    commitment, and must be the seed the reveal event carries.
    """

    def __init__(self, revealed_seed: bytes | None = None) -> None:
        self._revealed = revealed_seed
        self.status: RoomStatus | None = None
        self.deleted = False
        self.commitment: str | None = None
        self.seed: bytes | None = None
        """The revealed seed, once it is known to match the commitment."""
        self.revealed = False
        self.draws = 0
        self.verified = 0
        """Draws recomputed from the seed and found right."""
        self.pending = 0
        """Draws whose winner was eligible but that wait for the seed to be revealed."""
        self._participants: dict[str, tuple[str, Role]] = {}
        self._participations: dict[str, set[str]] = {}
        self._wins: Counter[str] = Counter()
        self._winners: dict[str, str] = {}
        self._eligible: list[str] = []

    def eligible(self) -> list[str]:
        """Participant ids a draw would pick from now, sorted (a copy)."""
        return list(self._eligible)

    def apply(self, event: Event) -> str | None:
        """``None`` if ``event`` keeps to the rules, else why it does not."""
        if self.deleted:
            return "an event after room:deleted"
        if self.status is None and not isinstance(event, RoomCreated):
            return "an event before room:created"
        match event:
            case RoomCreated():
                if self.status is not None:
                    return "room:created for a room that exists"
                self.status = RoomStatus.DRAFT
            case RoomStatusChanged():
                return self._status(event)
            case RoomDeleted():
                reason = self._closing(event.seed_reveal)
                self.deleted = True
                return reason
            case ParticipantJoined():
                p = event.participant
                self._join(p.id, p.user_id, p.role)
            case ParticipantLeft():
                self._leave(event.participant_id)
            case ParticipantUpdated():
                p = event.participant
                self._leave(event.participant_id)
                self._join(event.participant_id, p.user_id, p.role)
            case WinnerSelected():
                return self._draw(event)
            case WinnerRemoved():
                self._unwin(event.winner_id)
        return None

    def unverifiable(self) -> str | None:
        """Why the draws seen so far cannot all be recomputed yet, if they cannot."""
        if self.pending:
            return "not yet verifiable: seed not revealed"
        return None

    # ------------------------------------------------------------ status and seed

    def _status(self, event: RoomStatusChanged) -> str | None:
        current = self.status
        assert current is not None
        if event.old_status is not current:
            return f"status change from {event.old_status} but the room is {current}"
        if event.new_status not in _FORWARD[current]:
            return f"status change {current} → {event.new_status} is not allowed"
        reason = None
        if event.new_status is RoomStatus.ACTIVE:
            if event.seed_commitment is None:
                reason = (
                    "the room became active without a seed commitment "
                    "(activated before verifiable draws?): its draws cannot be verified"
                )
            self.commitment = event.seed_commitment
            committed = self.commitment
            if committed is not None and draw.seed_matches(self._revealed, committed):
                self.seed = self._revealed
        elif event.seed_reveal is not None or current is RoomStatus.ACTIVE:
            reason = self._closing(event.seed_reveal)
        self.status = event.new_status
        return reason

    def _closing(self, reveal: str | None) -> str | None:
        """Closing or deleting: an active room with a commitment must reveal its seed."""
        if reveal is None:
            if self.status is RoomStatus.ACTIVE and self.commitment is not None:
                return "the room left the active status without revealing its seed"
            return None
        if self.commitment is None:
            return "a seed is revealed but the room never committed to one"
        try:
            seed = bytes.fromhex(reveal)
        except ValueError:
            return "the revealed seed is not hex"
        if not draw.seed_matches(seed, self.commitment):
            return "the revealed seed does not match the commitment: sha256(seed) differs"
        if seed != self._revealed:
            return "the revealed seed is not the one the verifier read ahead"
        self.revealed = True
        return None

    # ------------------------------------------------------------ draws

    def _draw(self, event: WinnerSelected) -> str | None:
        if self.status is not RoomStatus.ACTIVE:
            return f"a draw in a room that is {self.status}, not active"
        number = self.draws + 1
        if event.draw_number != number:
            return f"drawNumber is {event.draw_number}, expected {number}"
        if self.commitment is None:
            return "a draw without a seed commitment"
        winner = event.winner
        chosen = winner.participant_id
        known = self._participants.get(chosen)
        if known is None or winner.participant.id != chosen:
            return f"the winner {chosen} is not a current participant"
        if winner.participant.user.id != known[0]:
            return f"the winner's user is not the user of participant {chosen}"
        eligible = self._eligible
        if event.eligible_count != len(eligible):
            return f"eligibleCount is {event.eligible_count}, recomputed {len(eligible)}"
        if not eligible:
            return "a draw with nobody eligible"
        if self.seed is not None:
            expected = draw.pick(eligible, draw.entropy(self.seed, number))
            if chosen != expected:
                return (
                    f"rigged draw: the winner is {chosen} but the seed picks {expected} "
                    f"(draw {number}, {len(eligible)} eligible)"
                )
            self.verified += 1
        else:
            if not _contains(eligible, chosen):
                return f"the winner {chosen} was not eligible"
            self.pending += 1
        self.draws = number
        self._win(winner.id, known[0])
        return None

    # ------------------------------------------------------------ who is eligible

    def _is_eligible(self, participant_id: str) -> bool:
        user_id, role = self._participants[participant_id]
        return role is Role.PARTICIPANT and self._wins[user_id] == 0

    def _join(self, participant_id: str, user_id: str, role: Role) -> None:
        self._leave(participant_id)
        self._participants[participant_id] = (user_id, role)
        self._participations.setdefault(user_id, set()).add(participant_id)
        if self._is_eligible(participant_id):
            _insert(self._eligible, participant_id)

    def _leave(self, participant_id: str) -> None:
        known = self._participants.pop(participant_id, None)
        if known is None:
            return
        _remove(self._eligible, participant_id)
        self._participations[known[0]].discard(participant_id)

    def _win(self, winner_id: str, user_id: str) -> None:
        self._unwin(winner_id)  # a reused winner id replaces the earlier win
        self._winners[winner_id] = user_id
        self._wins[user_id] += 1
        for participant_id in self._participations.get(user_id, ()):
            _remove(self._eligible, participant_id)

    def _unwin(self, winner_id: str) -> None:
        user_id = self._winners.pop(winner_id, None)
        if user_id is None:
            return
        self._wins[user_id] -= 1
        if self._wins[user_id] == 0:
            del self._wins[user_id]
            for participant_id in self._participations.get(user_id, ()):
                if self._is_eligible(participant_id):
                    _insert(self._eligible, participant_id)


def _contains(ordered: list[str], item: str) -> bool:
    i = bisect_left(ordered, item)
    return i < len(ordered) and ordered[i] == item


def _insert(ordered: list[str], item: str) -> None:
    i = bisect_left(ordered, item)
    if i == len(ordered) or ordered[i] != item:
        ordered.insert(i, item)


def _remove(ordered: list[str], item: str) -> None:
    i = bisect_left(ordered, item)
    if i < len(ordered) and ordered[i] == item:
        del ordered[i]
