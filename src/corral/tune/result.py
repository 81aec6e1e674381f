"""What a search found: the ranking, the winner with its margin over the current settings
(a margin inside the measured run-to-run spread is a tie), the table, the plots, and the
winner written into corral.yaml (`--apply`, a diff first)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from corral.errors import ConfigError
from corral.tune.space import AGAIN, CURRENT

DEFAULT_SPREAD = 0.05
"""assumed spread when a candidate was measured once (no run-to-run figure)"""


def _noise(*outcomes: dict[str, Any], drift: float = 0.0) -> float:
    """The larger spread of the outcomes, at least `drift` (current's restart-to-restart
    change)."""
    found = [float(o["spread"]) for o in outcomes if o.get("spread") is not None]
    return max(max(found, default=DEFAULT_SPREAD), drift)


def drift(outcomes: list[dict[str, Any]]) -> float | None:
    """How far `current` moved between its first and its second run (`current-again`), as
    a share of the larger: None unless both were measured."""
    runs = {o["name"]: o for o in outcomes if o["status"] == "measured"}
    first, again = runs.get(CURRENT.name), runs.get(AGAIN.name)
    if first is None or again is None:
        return None
    a, b = float(first["goodput"]), float(again["goodput"])
    return abs(a - b) / max(a, b) if max(a, b) > 0 else 0.0


def _rank(o: dict[str, Any]) -> tuple[float, float]:
    return float(o["goodput"]), float(o.get("decode_tok_s") or 0.0)


def _ranked(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The measured candidates; `current` with the mean goodput of its two runs when it
    ran twice (one figure per setting: the second run is a measurement, not a rival)."""
    measured = [o for o in outcomes if o["status"] == "measured"]
    again = next((o for o in measured if o["name"] == AGAIN.name), None)
    if again is None:
        return measured
    both = [o for o in measured if o["name"] == CURRENT.name]
    mean = {"goodput": (float(both[0]["goodput"]) + float(again["goodput"])) / 2} if both else {}
    return [{**o, **mean} if o["name"] == CURRENT.name else o
            for o in measured if o["name"] != AGAIN.name]  # fmt: skip


def verdict(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """Winner, margin over `current`, and whether that margin is a tie: inside the larger
    spread of the two, or inside `current`'s drift between its two runs (whose mean is
    then `current`'s figure)."""
    moved = drift(outcomes)
    measured = sorted(_ranked(outcomes), key=_rank, reverse=True)
    if not measured:
        return {"winner": None, "note": "no candidate was measured"}
    best = measured[0]
    if best["goodput"] <= 0:
        nearest = sorted(measured, key=lambda o: o.get("miss_ratio") or float("inf"))[:3]
        closest = "; ".join(f"{o['name']}: {o.get('miss')}" for o in nearest)
        return {"winner": None, "note": f"no candidate met the SLO; closest: {closest}",
                "closest": [o["name"] for o in nearest]}  # fmt: skip
    out: dict[str, Any] = {"winner": best["name"], "goodput": best["goodput"], "drift": moved}
    current = next((o for o in measured if o["name"] == CURRENT.name), None)
    if current is best:
        current = measured[1] if len(measured) > 1 else None
        out["note"] = "the current settings won"
    if current is not None:
        out |= _against(best, current, "", moved or 0.0)
    runner_up = measured[1] if len(measured) > 1 else None
    if runner_up is not None and runner_up is not current:
        out |= _against(best, runner_up, "runner_", moved or 0.0)
    noise = max(out.get("noise", 0.0), out.get("runner_noise", 0.0))
    out["tied_with_winner"] = [o["name"] for o in measured if _within(o, best, noise)]
    return out


def _against(best: dict[str, Any], other: dict[str, Any], prefix: str,
             moved: float) -> dict[str, Any]:  # fmt: skip
    """The winner's margin over `other`; a tie when inside the larger measured spread (or
    `moved`, current's drift). `other` meeting the SLO at no level: no margin, no tie."""
    noise = _noise(best, other, drift=moved)
    base = float(other["goodput"])
    margin = (float(best["goodput"]) - base) / base if base else None
    tie = margin is not None and margin <= noise
    return {f"{prefix}against": other["name"], f"{prefix}margin": margin,
            f"{prefix}noise": noise, f"{prefix}tie": tie}  # fmt: skip


def _within(other: dict[str, Any], best: dict[str, Any], noise: float) -> bool:
    top, seen = float(best["goodput"]), float(other["goodput"])
    return top > 0 and (top - seen) / top <= noise


def _cell(o: dict[str, Any], key: str, fmt: str) -> str:
    value = o.get(key)
    return format(value, fmt) if isinstance(value, (int, float)) else "–"


def table(outcomes: list[dict[str, Any]]) -> str:
    """A markdown table, one row per candidate (docs/tune.md shows one)."""
    lines = ["| candidate | status | goodput req/s | spread | max load | decode tok/s c=1 | note |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for o in outcomes:
        max_level = max((r.get("max_level", 0) for r in o.get("repeats", [])), default=None)
        note = o.get("reason") or o.get("miss") or o.get("planner") or ""
        lines.append(
            f"| {o['name']} | {o['status']} | {_cell(o, 'goodput', '.2f')} | "
            f"{_cell(o, 'spread', '.0%')} | {max_level if max_level is not None else '–'} | "
            f"{_cell(o, 'decode_tok_s', '.1f')} | {str(note).replace('|', '/')[:120]} |"
        )
    return "\n".join(lines)


def summary_line(v: dict[str, Any]) -> str:
    if v.get("winner") is None:
        return str(v.get("note", "no winner"))
    text = f"winner: {v['winner']} ({v['goodput']:.2f} req/s within the SLO)"
    for prefix in ("", "runner_"):
        if f"{prefix}against" in v:
            text += ", " + _margin_words(v, prefix)
    if v.get("note"):
        text += f"; {v['note']}"
    if v.get("drift") is not None:
        text += (f"; current moved {v['drift']:.0%} between its first and last run "
                 "(its figure is their mean)")  # fmt: skip
    return text


def _margin_words(v: dict[str, Any], prefix: str) -> str:
    against, margin = v[f"{prefix}against"], v[f"{prefix}margin"]
    if margin is None:
        return f"{against} met the SLO at no load level"
    word = "a tie" if v[f"{prefix}tie"] else "a win"
    return f"{margin:+.0%} over {against}, measured spread {v[f'{prefix}noise']:.0%}: {word}"


def plot(outcomes: list[dict[str, Any]], folder: Path) -> list[Path]:
    """goodput.png (goodput against load, per candidate) and pareto.png (goodput against
    decode tok/s at concurrency 1, the front marked)."""
    from corral.bench.plots import _figure, _save

    plt = _figure()
    folder.mkdir(parents=True, exist_ok=True)
    measured = [o for o in outcomes if o["status"] == "measured" and o.get("repeats")]
    fig, ax = plt.subplots(figsize=(7, 4))
    for o in measured:
        levels = o["repeats"][0]["levels"]
        ax.plot([lv["level"] for lv in levels], [lv["goodput_req_s"] or 0 for lv in levels],
                marker="o", label=o["name"])  # fmt: skip
    ax.set_xlabel("concurrency")
    ax.set_ylabel("goodput req/s")
    ax.legend(fontsize=7)
    paths = [_save(plt, fig, folder / "goodput.png")]
    fig, ax = plt.subplots(figsize=(6, 4))
    points = [(o.get("decode_tok_s") or 0.0, o["goodput"], o["name"]) for o in measured]
    front = pareto(points)
    for x, y, name in points:
        ax.scatter([x], [y], color="tab:red" if name in front else "tab:gray")
        ax.annotate(name, (x, y), fontsize=6)
    ax.set_xlabel("decode tok/s at concurrency 1")
    ax.set_ylabel("goodput req/s")
    paths.append(_save(plt, fig, folder / "pareto.png"))
    return paths


def pareto(points: list[tuple[float, float, str]]) -> set[str]:
    """Names no other point beats on both axes."""

    def beaten(x: float, y: float) -> bool:
        return any(a >= x and b >= y and (a, b) != (x, y) for a, b, _ in points)

    return {n for x, y, n in points if not beaten(x, y)}


def apply_winner(config_path: Path, deployment: str, winner: dict[str, Any]) -> tuple[str, str]:
    """(new text, unified diff) of corral.yaml with the winner's flags and fields."""
    old = config_path.read_text("utf-8")
    data = yaml.safe_load(old) or {}
    for dep in data.get("deployments", []):
        if dep.get("name") == deployment:
            dep["args"] = [*dep.get("args", []), *winner.get("args", [])]
            dep.update(winner.get("fields", {}))
            break
    else:
        raise ConfigError(f"{config_path} has no deployment {deployment!r} to apply the winner to")
    new = yaml.safe_dump(data, sort_keys=False)
    name = str(config_path)
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), name, name + "+")
    diff = "".join(lines)
    return new, diff
