"""The checker itself: each kind of wrong history is counted (so a clean report means
something)."""

from __future__ import annotations

from typing import Any

from .history import Client, Report, _check_one


def _rows(*events: tuple[int, str, str | None]) -> list[dict[str, Any]]:
    return [{"seq": seq, "type": type_, "who": who} for seq, type_, who in events]


LOG = _rows(
    (1, "room:created", None),
    (2, "participant:joined", "ann"),
    (3, "room:updated", None),
    (4, "participant:left", "ann"),
    (5, "room:updated", None),
    (6, "participant:joined", "ann"),
    (7, "room:updated", None),
)


def _report(user: str, delivered: list[int], start: int = 0) -> Report:
    report = Report(clients=1, streams=1, delivered=len(delivered))
    client = Client("c", user, start={"r": start}, seqs={"r": delivered})
    _check_one(report, client, "r", LOG)  # type: ignore[arg-type]
    return report


def test_a_complete_history_is_clean_and_hidden_seqs_are_not_missing():
    assert _report("ann", [1, 2, 3, 4, 6, 7]).clean
    assert _report("org", [1, 2, 3, 4, 5, 6, 7]).clean
    assert _report("ann", [6, 7], start=5).clean


def test_each_fault_is_counted():
    lost = _report("org", [1, 2, 3, 5, 6, 7])
    assert (lost.lost, lost.problems) == (1, ["c r lost: [4]"])
    assert _report("org", [1, 2, 3, 3, 4, 5, 6, 7]).duplicated == 1
    assert _report("org", [1, 3, 2, 4, 5, 6, 7]).reordered == 1
    assert _report("ann", [1, 2, 3, 4, 5, 6, 7]).after_removal == 1
