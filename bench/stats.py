"""Figures: repeated measurements of ours and of a baseline, their ratio, and a target.

Each repeat measures ours and its baseline back to back (in alternating order),
and the ratio is taken per repeat, so drift on a noisy machine cancels out;
the figure reports the median of the per-repeat ratios and their min–max.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Figure", "Scenario", "Target", "percentile", "summary"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"median": None, "min": None, "max": None, "q1": None, "q3": None, "values": []}
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "q1": q1,
        "q3": q3,
        "values": [round(v, 6) for v in values],
    }


@dataclass(frozen=True)
class Target:
    """``stat`` of ``on`` ("ratio" or "ours") compared with ``value`` by ``op``."""

    op: str  # ">=", "<=", "<", "=="
    value: float
    on: str = "ratio"
    stat: str = "median"
    text: str = ""

    def check(self, figure: Figure) -> bool | None:
        data = figure.ratio_summary() if self.on == "ratio" else summary(figure.ours)
        actual = data[self.stat]
        if actual is None:
            return None
        match self.op:
            case ">=":
                return bool(actual >= self.value)
            case "<=":
                return bool(actual <= self.value)
            case "<":
                return bool(actual < self.value)
            case "==":
                return bool(actual == self.value)
        raise ValueError(self.op)


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    baseline: str
    ours: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    target: Target | None = None
    note: str = ""

    def ratios(self) -> list[float]:
        return [o / b for o, b in zip(self.ours, self.base, strict=False) if b]

    def ratio_summary(self) -> dict[str, Any]:
        return summary(self.ratios())

    def to_json(self) -> dict[str, Any]:
        passed = self.target.check(self) if self.target else None
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "ours": summary(self.ours),
            "baseline": {"name": self.baseline, **summary(self.base)},
            "ratio": self.ratio_summary(),
            "target": None
            if self.target is None
            else {
                "on": self.target.on,
                "op": self.target.op,
                "value": self.target.value,
                "stat": self.target.stat,
                "text": self.target.text,
                "pass": passed,
            },
            "note": self.note,
        }


@dataclass
class Scenario:
    id: str
    title: str
    status: str = "ok"  # ok | skipped | error
    note: str = ""
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def figure(self, key: str, label: str, unit: str, baseline: str, **kwargs: Any) -> Figure:
        fig = Figure(key=f"{self.id}.{key}", label=label, unit=unit, baseline=baseline, **kwargs)
        self.figures.append(fig)
        return fig

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "note": self.note,
            "seconds": round(self.seconds, 1),
            "figures": [f.to_json() for f in self.figures],
            "details": self.details,
        }
