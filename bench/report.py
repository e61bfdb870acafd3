"""Writing a run: ``latest.json`` (everything), ``latest.md`` (the table), ``latest.png``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["write"]


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1 or value == 0:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _spread(data: dict[str, Any], suffix: str = "") -> str:
    if data.get("median") is None:
        return "–"
    text = f"{_num(data['median'])}{suffix}"
    if len(data.get("values", [])) > 1:
        text += f" ({_num(data['min'])}–{_num(data['max'])})"
    return text


def _verdict(target: dict[str, Any] | None) -> str:
    if target is None:
        return ""
    if target["pass"] is None:
        return "no data"
    return "**pass**" if target["pass"] else "**FAIL**"


def _node_line(meta: dict[str, Any]) -> str:
    peer = meta.get("node_peer") or {"status": "skipped", "note": "not recorded"}
    if peer["status"] != "ok":
        return f"Node.js peer: **skipped**: {peer['note']}"
    packages = peer.get("packages", {})
    return (
        f"Node.js peer: node {peer['node_version']}, socket.io {packages.get('socket.io', '?')} "
        f"(engine.io {packages.get('engine.io', '?')}, ws {packages.get('ws', '?')}) · "
        f"P2's commit clock: {meta.get('p2_commit_clock', '?')}"
    )


def markdown(run: dict[str, Any]) -> str:
    meta = run["meta"]
    machine = meta["machine"]
    lines = [
        f"# roomcast benchmark: {meta['mode']} run",
        "",
        f"{meta['started']} · {meta['seconds']:.0f} s · {meta['repeats']} repeats per figure · "
        f"commit {meta['git']}",
        "",
        f"Machine: {machine['nproc']} × {machine['cpu']}, {machine['memory_gb']} GB · "
        f"Python {machine['python']} · PostgreSQL {machine['postgres']} "
        f"({machine['postgres_kind']}) · Linux {machine['kernel']} · "
        f"load average {machine['load_before']} before, {machine['load_after']} after",
        "",
        _node_line(meta),
        "",
        "Every figure: median over repeats, min–max in brackets. Ratio = ours ÷ baseline, "
        "taken per repeat (both measured back to back in the same run).",
        "",
        "| | figure | ours | baseline | ratio | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in run["scenarios"]:
        sid = scenario["id"]
        if scenario["status"] != "ok":
            status = "SKIPPED" if scenario["status"] == "skipped" else "ERROR"
            lines.append(f"| {sid} | {scenario['title']} | {status}: {scenario['note']} | | | | |")
            continue
        for fig in scenario["figures"]:
            unit = fig["unit"]
            target = fig["target"]
            lines.append(
                "| "
                + " | ".join(
                    [
                        sid,
                        fig["label"],
                        f"{_spread(fig['ours'])} {unit}",
                        f"{_spread(fig['baseline'])} {unit} ({fig['baseline']['name']})",
                        _spread(fig["ratio"], "×"),
                        target["text"] if target else "",
                        _verdict(target),
                    ]
                )
                + " |"
            )
    targets = [
        (s["id"], f["label"], f["target"])
        for s in run["scenarios"]
        for f in s["figures"]
        if f["target"]
    ]
    passed = sum(1 for *_, t in targets if t["pass"])
    lines += ["", f"Targets: {passed} of {len(targets)} pass."]
    notes = [f"- {s['id']}: {s['note']}" for s in run["scenarios"] if s["note"]]
    fig_notes = [
        f"- {f['key']}: {f['note']}" for s in run["scenarios"] for f in s["figures"] if f["note"]
    ]
    if notes or fig_notes:
        lines += ["", "Notes:", "", *notes, *fig_notes]
    return "\n".join(lines) + "\n"


def chart(run: dict[str, Any], path: Path) -> str | None:
    """A bar per figure with a ratio: median, min–max whiskers, the target marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (pip install matplotlib)"
    rows = [
        (s["id"], f)
        for s in run["scenarios"]
        for f in s["figures"]
        if f["ratio"]["median"] is not None and f["ratio"]["median"] > 0
    ]
    if not rows:
        return "no ratios to chart"
    height = 1.2 + 0.32 * len(rows)
    fig, ax = plt.subplots(figsize=(11, height))
    labels, medians, lows, highs, colours, hatches = [], [], [], [], [], []
    for sid, f in reversed(rows):
        # The Node.js peer's bars are hatched: the server people would pick instead.
        hatches.append("///" if "Node.js" in f["baseline"]["name"] else "")
        ratio = f["ratio"]
        labels.append(f"{sid} {f['label']}")
        medians.append(ratio["median"])
        lows.append(ratio["median"] - ratio["min"])
        highs.append(ratio["max"] - ratio["median"])
        target = f["target"]
        if target is None or target["pass"] is None:
            colours.append("#9aa5b1")
        else:
            colours.append("#2e9d57" if target["pass"] else "#d64545")
    ys = list(range(len(rows)))
    # Bars grow from 1× (as good as the baseline) towards the ratio.
    lefts = [min(1.0, m) for m in medians]
    widths = [abs(m - 1.0) for m in medians]
    bars = ax.barh(ys, widths, left=lefts, color=colours, height=0.6)
    for bar, hatch in zip(bars, hatches, strict=True):
        if hatch:
            bar.set_hatch(hatch)
            bar.set_edgecolor("#1f2d3d")
    ax.errorbar(medians, ys, xerr=[lows, highs], fmt="none", ecolor="black", capsize=3)
    for y, (_sid, f) in zip(ys, reversed(rows), strict=True):
        target = f["target"]
        if target and target["on"] == "ratio":
            ax.plot([target["value"]] * 2, [y - 0.4, y + 0.4], color="black", linewidth=2)
    ax.axvline(1.0, color="#555", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("ratio ours ÷ baseline (log scale; median, min–max; black tick: target)")
    meta = run["meta"]
    machine = meta["machine"]
    ax.set_title(
        f"roomcast {meta['mode']} benchmark, {meta['started'][:16]} · {machine['nproc']} × "
        f"{machine['cpu']}\ngreen pass, red fail, grey no target; hatched: vs the Node.js peer",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write(run: dict[str, Any], out: Path, stem: str = "latest") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    problem = chart(run, out / f"{stem}.png")
    if problem:
        run["meta"]["chart"] = problem
    else:
        written.append(out / f"{stem}.png")
    json_path = out / f"{stem}.json"
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(run), indent=2) + b"\n")
    md_path = out / f"{stem}.md"
    md_path.write_text(markdown(run))
    return [json_path, md_path, *written]
