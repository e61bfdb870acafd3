"""Properties of the room decider under random command sequences.

A state machine creates one room and then throws random commands at it from a
small cast of users. Each accepted command's events are folded with ``evolve``;
a refused one must leave the state as it was. After every step the rules that
must always hold are checked.

New entities get fresh ids, as the HTTP layer guarantees (``sources.new_id``);
references pick among the ids seen so far plus one that never existed. The
strategies are built once with placeholder ids that the machine fills in:
strategies rebuilt from the machine's state on every step make Hypothesis slow.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from hypothesis import event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from msgspec import UNSET, structs

from roomcast.audit.quiz_replay import Quizzes
from roomcast.domain import room
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
from roomcast.domain.draw import entropy
from roomcast.domain.errors import Rejected, RoomNotFound, VersionConflict
from roomcast.domain.events import Event, WinnerSelected, decode_event
from roomcast.domain.state import AppGrant, Role, Room, RoomStatus, UserRef
from tests.unit.builders import AT, ROOM_ID, SEED, user

ORGANIZER = user("alice")
USERS = [ORGANIZER, *(user(name) for name in ("bob", "carol", "dave", "erin"))]
LATE = 25
"""Steps before a run may close or delete its room."""
RANK = {RoomStatus.DRAFT: 0, RoomStatus.ACTIVE: 1, RoomStatus.CLOSED: 2}

FRESH = "<fresh>"
"""Placeholder for the id of a new entity; becomes one never used before."""

REF = "<ref>"
"""A reference placeholder's prefix: ``<ref>i`` becomes the i-th id seen so far (cyclically);
``<ref>7`` (or any, while none was seen) becomes an id that never existed."""
REFS = 8

actors = st.sampled_from([ORGANIZER, *USERS])  # the organizer may do the most: twice as likely
organizer_mostly = st.sampled_from([ORGANIZER, ORGANIZER, ORGANIZER, USERS[1]])
"""For what only the organizer may do: draws and removing winners."""
at = st.just(AT)  # the machine gives every command its own time
fresh = st.just(FRESH)
refs = st.integers(min_value=0, max_value=REFS - 1).map(lambda i: f"{REF}{i}")
names = st.sampled_from(["Lottery", "Raffle", "TV", " "])
descriptions = st.sampled_from([None, "first", "second"])
room_settings = st.sampled_from([{}, {"theme": "dark"}, {"max": 3}])
quantities = st.integers(min_value=-1, max_value=4)
seeds = st.just(SEED)  # the room's secret seed, as the HTTP layer brings it
SALT = bytes(16)
OPTIONS = ["Paris", "Rome", "Oslo"]
ANSWER = "Paris"  # every question's secret answer, as the quiz service brings it
LOTTERY = AppGrant(app_id="lottery", permissions=("realtime:publish",))


def unset_or(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.just(UNSET) | strategy


def encode(value: object) -> bytes:
    return msgspec.json.encode(value)


def every_command(actor: UserRef) -> list[Command]:
    """One command of each kind but CreateRoom."""
    return [
        UpdateRoom(actor=actor, at=AT, name="Renamed"),
        ChangeRoomStatus(actor=actor, at=AT, status=RoomStatus.CLOSED, seed=SEED),
        DeleteRoom(actor=actor, at=AT, seed=SEED),
        JoinRoom(actor=actor, at=AT, participant_id="part_new"),
        LeaveRoom(actor=actor, at=AT),
        RemoveParticipant(actor=actor, at=AT, participant_id="part_new"),
        ChangeParticipantRole(actor=actor, at=AT, participant_id="p", role=Role.MODERATOR),
        CreatePrize(actor=actor, at=AT, prize_id="prz_new", name="Car"),
        UpdatePrize(actor=actor, at=AT, prize_id="prz_new", name="Big TV"),
        DeletePrize(actor=actor, at=AT, prize_id="prz_new"),
        DrawWinner(actor=actor, at=AT, prize_id="prz_new", winner_id="w", seed=SEED),
        RemoveWinner(actor=actor, at=AT, winner_id="w"),
        PublishAppEvent(actor=actor, at=AT, app=LOTTERY, name="lottery:x", data={}),
        PublishQuestion(
            actor=actor,
            at=AT,
            question_id="q",
            question="?",
            options=OPTIONS,
            time_limit=5,
            answer=ANSWER,
            salt=SALT,
        ),
        SubmitAnswer(
            actor=actor, at=AT, question_id="q", answer=ANSWER, correct_answer=ANSWER, salt=SALT
        ),
        CloseQuestion(actor=actor, at=AT, question_id="q", correct_answer=ANSWER, salt=SALT),
    ]


def eligible_before(state: Room) -> list[str]:
    """The draw's candidates, recomputed here from the rule: plain, prize-less, by id."""
    holders = {w.participant.user.id for w in state.winners.values()}
    return sorted(
        p.id
        for p in state.participants.values()
        if p.role is Role.PARTICIPANT and p.user_id not in holders
    )


class RoomMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state: room.State = room.initial_state()
        self.history: list[Event] = []
        self.deleted = False
        self.step = 0
        self.seen: dict[str, list[str]] = {
            "participant_id": [],
            "prize_id": [],
            "winner_id": [],
            "question_id": [],
        }

    # ------------------------------------------------------------ steps

    @initialize(
        start=st.sampled_from([RoomStatus.DRAFT, RoomStatus.ACTIVE, RoomStatus.ACTIVE]),
        crowd=st.integers(min_value=0, max_value=4),
        moderator=st.booleans(),
        quantity=st.integers(min_value=1, max_value=3),
    )
    def create_the_room(
        self, start: RoomStatus, crowd: int, moderator: bool, quantity: int
    ) -> None:
        """Alice creates the room with a prize; most runs start with people in an open room.

        With ``moderator`` the first to join (bob) is promoted: draws must pass over him.
        """
        seeds: list[Command] = [CreateRoom(actor=ORGANIZER, at=AT, room_id=ROOM_ID, name="Room")]
        seeds += [JoinRoom(actor=u, at=AT, participant_id=FRESH) for u in USERS[1 : 1 + crowd]]
        if crowd and moderator:
            seeds.append(
                ChangeParticipantRole(
                    actor=ORGANIZER, at=AT, participant_id=f"{REF}0", role=Role.MODERATOR
                )
            )
        seeds.append(
            CreatePrize(actor=ORGANIZER, at=AT, prize_id=FRESH, name="TV", quantity=quantity)
        )
        if start is RoomStatus.ACTIVE:
            seeds.append(ChangeRoomStatus(actor=ORGANIZER, at=AT, status=start, seed=SEED))
        for seed in seeds:
            assert self.apply(seed), seed

    @rule(
        command=st.one_of(
            st.builds(CreateRoom, actor=actors, at=at, room_id=st.just(ROOM_ID), name=names),
            st.builds(
                ChangeRoomStatus,
                actor=actors,
                at=at,
                status=st.sampled_from([RoomStatus.DRAFT, RoomStatus.ACTIVE]),
                seed=seeds,
            ),
        )
    )
    def create_or_open_the_room(self, command: Command) -> None:
        self.apply(command)

    @precondition(lambda self: self.step >= LATE)
    @rule(
        command=st.one_of(
            st.builds(
                ChangeRoomStatus,
                actor=actors,
                at=at,
                status=st.just(RoomStatus.CLOSED),
                seed=seeds,
            ),
            st.builds(DeleteRoom, actor=actors, at=at, seed=seeds),
        )
    )
    def close_or_delete_the_room(self, command: Command) -> None:
        """Only late in a run: there is no way back, and most steps should meet an open room."""
        self.apply(command)

    @rule(
        command=st.builds(
            UpdateRoom,
            actor=actors,
            at=at,
            name=unset_or(names),
            description=unset_or(descriptions),
            settings=unset_or(room_settings),
        )
    )
    def update_room(self, command: UpdateRoom) -> None:
        self.apply(command)

    @rule(command=st.builds(JoinRoom, actor=actors, at=at, participant_id=fresh))
    def join_room(self, command: JoinRoom) -> None:
        self.apply(command)

    @rule(command=st.builds(LeaveRoom, actor=actors, at=at))
    def leave_room(self, command: LeaveRoom) -> None:
        self.apply(command)

    @rule(command=st.builds(RemoveParticipant, actor=actors, at=at, participant_id=refs))
    def remove_participant(self, command: RemoveParticipant) -> None:
        self.apply(command)

    @rule(
        command=st.builds(
            ChangeParticipantRole,
            actor=actors,
            at=at,
            participant_id=refs,
            role=st.sampled_from(Role),
        )
    )
    def change_participant_role(self, command: ChangeParticipantRole) -> None:
        self.apply(command)

    @rule(
        command=st.builds(
            CreatePrize, actor=actors, at=at, prize_id=fresh, name=names, quantity=quantities
        )
    )
    def create_prize(self, command: CreatePrize) -> None:
        self.apply(command)

    @rule(
        command=st.builds(
            UpdatePrize,
            actor=actors,
            at=at,
            prize_id=refs,
            name=unset_or(names),
            description=unset_or(descriptions),
            quantity=unset_or(quantities),
        )
    )
    def update_prize(self, command: UpdatePrize) -> None:
        self.apply(command)

    @rule(command=st.builds(DeletePrize, actor=actors, at=at, prize_id=refs))
    def delete_prize(self, command: DeletePrize) -> None:
        self.apply(command)

    draws = st.builds(
        DrawWinner, actor=organizer_mostly, at=at, prize_id=refs, winner_id=fresh, seed=seeds
    )

    @rule(command=draws)
    def draw_winner(self, command: DrawWinner) -> None:
        self.apply(command)

    @rule(command=draws)
    def draw_another_winner(self, command: DrawWinner) -> None:
        """Draws are what most invariants are about: a second rule makes them twice as likely."""
        self.apply(command)

    @rule(command=st.builds(RemoveWinner, actor=organizer_mostly, at=at, winner_id=refs))
    def remove_winner(self, command: RemoveWinner) -> None:
        self.apply(command)

    @rule(
        command=st.builds(
            PublishQuestion,
            actor=actors,
            at=at,
            question_id=fresh,
            question=st.just("Capital of France?"),
            options=st.just(OPTIONS),
            time_limit=st.sampled_from([1.0, 3.0, 10.0]),
            answer=st.just(ANSWER),
            salt=st.just(SALT),
        )
    )
    def publish_question(self, command: PublishQuestion) -> None:
        self.apply(command)

    @rule(
        command=st.builds(
            SubmitAnswer,
            actor=actors,
            at=at,
            question_id=refs,
            answer=st.sampled_from([" paris", "Rome", "Oslo", "Paris"]),
            correct_answer=st.just(ANSWER),
            salt=st.just(SALT),
        )
    )
    def answer_question(self, command: SubmitAnswer) -> None:
        self.apply(command)

    @rule(
        command=st.builds(
            CloseQuestion,
            actor=actors,
            at=at,
            question_id=refs,
            correct_answer=st.just(ANSWER),
            salt=st.just(SALT),
        )
    )
    def close_question(self, command: CloseQuestion) -> None:
        self.apply(command)

    @rule(name=st.sampled_from(["lottery:spin", "casino:spin", "lottery:"]))
    def publish_app_event(self, name: str) -> None:
        app = UserRef(id="app:lottery", name="lottery")
        self.apply(PublishAppEvent(actor=app, at=AT, app=LOTTERY, name=name, data={"n": 1}))

    # ------------------------------------------------------------ applying

    def resolve(self, template: Command) -> Command:
        """``template`` with its placeholder ids filled in and a time of its own."""
        self.step += 1
        fields: dict[str, object] = {"at": AT + timedelta(seconds=self.step)}
        for field, seen in self.seen.items():
            value = getattr(template, field, None)
            prefix = field.removesuffix("_id")
            if value == FRESH:  # unique, but not in creation order: draws sort by id
                fields[field] = f"{prefix}_{self.step * 7919 % 1000:03}"
            elif isinstance(value, str) and value.startswith(REF):
                index = int(value.removeprefix(REF))
                known = seen and index < REFS - 1
                fields[field] = seen[index % len(seen)] if known else f"{prefix}_never"
        return structs.replace(template, **fields)

    def apply(self, template: Command) -> bool:
        """Decide the command, fold its events and check the per-step rules; True if accepted."""
        command = self.resolve(template)
        note(repr(command))
        before = self.state
        snapshot = encode(before)
        refusal: Rejected | None = None
        try:
            events = room.decide(command, before)
        except Rejected as error:
            refusal = error
        if refusal is not None:
            event(f"refused: {type(command).__name__} {type(refusal).__name__}")
            assert encode(before) == snapshot, "a refused command changed the state"
            if self.deleted:
                expected = VersionConflict if isinstance(command, CreateRoom) else RoomNotFound
                assert type(refusal) is expected, refusal
            return False
        event(f"accepted: {type(command).__name__} -> {len(events)} event(s)")
        assert not self.deleted, f"a deleted room accepted {command!r}"

        state = before
        for produced in events:
            assert decode_event(encode(produced)) == produced
            if isinstance(produced, WinnerSelected):
                assert isinstance(command, DrawWinner)
                assert before is not None
                self.check_the_draw(command, produced, before)
            state = room.evolve(state, produced)
        assert encode(before) == snapshot, "decide or evolve changed the state they were given"
        assert state is not None
        if before is not None:
            assert RANK[state.info.status] >= RANK[before.info.status], "status went backwards"

        self.state = state
        self.history.extend(events)
        self.deleted = self.deleted or isinstance(command, DeleteRoom)
        if events:
            for field, seen in self.seen.items():
                if getattr(template, field, None) == FRESH:
                    seen.append(getattr(command, field))
        return True

    @staticmethod
    def check_the_draw(command: DrawWinner, selected: WinnerSelected, before: Room) -> None:
        """The winner was a current plain participant, picked by the documented formula."""
        assert before.info.status is RoomStatus.ACTIVE
        chosen = before.participants.get(selected.winner.participant_id)
        assert chosen is not None, "the winner was not a current participant"
        assert chosen.role is Role.PARTICIPANT
        assert selected.winner.participant.user == chosen.user
        eligible = eligible_before(before)
        assert command.seed is not None
        assert chosen.id == eligible[entropy(command.seed, before.draws + 1) % len(eligible)]
        assert selected.eligible_count == len(eligible)
        assert selected.draw_number == before.draws + 1

    # ------------------------------------------------------------ invariants

    def current(self) -> Room:
        assert self.state is not None
        return self.state

    @invariant()
    def prize_quantities_match_the_winners(self) -> None:
        state = self.current()
        for prize in state.prizes.values():
            assert 0 <= prize.quantity_remaining <= prize.quantity, prize
            holders = [w for w in state.winners.values() if w.prize_id == prize.id]
            assert prize.quantity - prize.quantity_remaining == len(holders), prize

    @invariant()
    def nobody_holds_two_wins_at_once(self) -> None:
        state = self.current()
        holders = [w.participant.user.id for w in state.winners.values()]
        assert len(holders) == len(set(holders))
        assert state.draws >= len(state.winners)

    @invariant()
    def members_and_participants_agree(self) -> None:
        state = self.current()
        assert len(state.members) == len(state.participants)
        assert state.members == {p.user_id: p.id for p in state.participants.values()}
        assert state.info.organizer_id not in state.members
        for participant_id, participant in state.participants.items():
            assert participant.id == participant_id
            assert participant.user.id == participant.user_id

    @invariant()
    def quiz_ranks_are_the_order_of_correct_answers(self) -> None:
        for question in self.current().questions.values():
            ranks = sorted(a.rank for a in question.answers.values() if a.rank is not None)
            assert ranks == list(range(1, question.correct_count + 1))
            assert all((a.rank is None) != a.correct for a in question.answers.values())

    @invariant()
    def the_audit_re_judges_every_quiz_the_same(self) -> None:
        quizzes = Quizzes()
        for produced in self.history:
            assert quizzes.apply(produced) is None
        assert quizzes.questions == len(self.current().questions)

    @invariant()
    def replaying_the_log_gives_the_same_state(self) -> None:
        assert room.fold(self.history) == self.state

    @invariant()
    def the_state_survives_a_json_round_trip(self) -> None:
        state = self.current()
        assert msgspec.json.decode(encode(state), type=Room) == state

    @invariant()
    def a_deleted_room_is_terminal_and_refuses_everything(self) -> None:
        state = self.current()
        assert room.is_terminal(state) == self.deleted
        if not self.deleted:
            return
        for actor in (ORGANIZER, USERS[1]):
            for command in every_command(actor):
                with pytest.raises(RoomNotFound):
                    room.decide(command, state)


RoomMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestRoomMachine = RoomMachine.TestCase
