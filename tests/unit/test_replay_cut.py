"""Where a subscribe's inline replay stops (``protocol.replay_cut``), and the membership a
truncated subscribe's live events are judged by (``service.visibility.member_at_end``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from roomcast.gateway.protocol import ReplayCut, replay_cut
from roomcast.service.visibility import Visibility, member_at_end, visible_count


def test_within_the_cap_nothing_is_cut():
    assert replay_cut(5, 20, 15) == ReplayCut(truncated=False, next_after=20)
    assert replay_cut(20, 20, 15) == ReplayCut(truncated=False, next_after=20)


def test_past_the_cap_the_inline_part_is_cap_seqs():
    assert replay_cut(5, 21, 15) == ReplayCut(truncated=True, next_after=20)
    assert replay_cut(0, 100_000, 10_000) == ReplayCut(truncated=True, next_after=10_000)


def test_a_cap_of_zero_is_no_cap():
    assert replay_cut(0, 10**9, 0) == ReplayCut(truncated=False, next_after=10**9)


@given(
    after=st.integers(0, 10**6),
    behind=st.integers(0, 10**6),
    cap=st.integers(0, 10**5),
)
def test_the_cut_is_inside_the_range_and_at_most_cap_past_after(after, behind, cap):
    head = after + behind
    cut = replay_cut(after, head, cap)
    assert after <= cut.next_after <= head
    assert cut.truncated == (cut.next_after < head)
    if cap:
        assert cut.next_after - after <= cap
    if not cut.truncated:
        assert cut.next_after == head


def test_membership_at_the_end_follows_the_last_change():
    assert member_at_end(True, []) is True
    assert member_at_end(False, []) is False
    assert member_at_end(True, [(3, "participant:left")]) is False
    assert member_at_end(True, [(3, "participant:left"), (9, "participant:joined")]) is True
    assert member_at_end(False, [(4, "participant:joined"), (6, "participant:left")]) is False


def test_the_inline_count_covers_only_the_inline_part():
    # Left at 3, joined at 9: 4..8 hidden. Cut at 6: 1..3 visible inline, 3 of them.
    changes = [(3, "participant:left"), (9, "participant:joined")]
    inline = [c for c in changes if c[0] <= 6]
    assert visible_count(True, 0, 6, inline) == 3
    assert member_at_end(True, changes) is True


_KINDS = st.sampled_from(["room:updated", "participant:joined", "participant:left"])


@given(
    kinds=st.lists(_KINDS, max_size=40),
    member=st.booleans(),
    after=st.integers(0, 40),
    head=st.integers(0, 40),
)
def test_the_count_is_what_the_policy_admits_event_by_event(kinds, member, after, head):
    """``visible_count`` and ``member_at_end`` apply the read policy without the events:
    over any log they agree with ``Visibility.admit`` run over the events themselves."""
    log = [(seq, kind) for seq, kind in enumerate(kinds, start=1)]
    after, head = min(after, len(log)), min(max(head, after), len(log))
    window = [(seq, kind) for seq, kind in log if after < seq <= head]
    policy = Visibility("u", member=member)
    admitted = sum(policy.admit(kind, _payload(kind)) for _, kind in window)
    changes = [(seq, kind) for seq, kind in window if kind != "room:updated"]
    assert visible_count(member, after, head, changes) == admitted
    assert member_at_end(member, changes) is policy.member


def _payload(kind: str) -> dict[str, object]:
    if kind == "participant:joined":
        return {"participant": {"userId": "u"}}
    if kind == "participant:left":
        return {"userId": "u"}
    return {}
