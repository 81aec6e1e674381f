"""Markdown tables for bench results, and `compare`: deltas between two results with
regressions flagged. Inputs are the JSON-ready dicts the workloads return."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Row = list[str]


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(header: Row, rows: list[Row]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def story_table(result: dict[str, Any]) -> str:
    header = [
        "Test Scenario",
        "Tokens Generated",
        "of which reasoning",
        "Time (seconds)",
        "Tokens/sec (seed)",
        "TTFT (ms)",
        "TTFVT (ms)",
        "Decode tok/s",
    ]
    rows = []
    for r in result["rows"]:
        if "error" in r:
            rows.append([f"{r['words']}-word story", "error: " + str(r["error"])] + [""] * 6)
            continue
        counted_by_server = r["token_source"] == "usage"  # noqa: S105  (not a secret)
        tokens = str(r["tokens"]) + ("" if counted_by_server else "*")
        rows.append(
            [
                f"{r['words']}-word story",
                tokens,
                str(r["reasoning_tokens"]),
                f"{r['seconds']:.3f}",
                _num(r["seed_tok_s"]),
                _ms(r["ttft"]),
                _ms(r["ttfvt"]),
                _num(r["decode_tok_s"]),
            ]
        )
    text = table(header, rows)
    if any(r.get("token_source") not in (None, "usage") for r in result["rows"]):
        text += "\n\n\\* no usage from the server: tokens counted without it (see docs/bench.md)"
    return text


def _pct(dist: dict[str, float], key: str) -> str:
    return _ms(dist.get(key))


def serve_table(result: dict[str, Any]) -> str:
    header = [
        "load",
        "ok/total",
        "out tok/s",
        "steady tok/s",
        "req/s",
        "goodput req/s",
        "TTFT p50/p99 ms",
        "TPOT p50/p99 ms",
        "gap p99 ms",
        "e2e p50 ms",
        "queue p99 ms",
        "loop lag p99 ms",
    ]
    rows = []
    for lv in result["levels"]:
        rows.append(
            [
                lv["label"],
                f"{lv['ok']}/{lv['requests']}",
                _num(lv["output_tok_s"]),
                _num(lv["steady_output_tok_s"]),
                _num(lv["req_s"], 2),
                _num(lv["goodput_req_s"], 2),
                f"{_pct(lv['ttft'], 'p50')} / {_pct(lv['ttft'], 'p99')}",
                f"{_pct(lv['tpot'], 'p50')} / {_pct(lv['tpot'], 'p99')}",
                _pct(lv["chunk_gap"], "p99"),
                _pct(lv["e2e"], "p50"),
                _pct(lv["queue_delay"], "p99"),
                _pct(lv["loop_lag"], "p99"),
            ]
        )
    notes = list(result.get("notes", []))
    for lv in result["levels"]:
        notes += [f"{lv['label']}: {n}" for n in lv.get("notes", [])]
        notes += [f"{lv['label']}: error: {e}" for e in lv.get("errors", [])]
    return table(header, rows) + "".join(f"\n\n- {n}" for n in notes)


def probes_table(result: dict[str, Any]) -> str:
    parts = []
    if "prefill" in result:
        rows = [
            [
                str(r["context"]),
                str(r["prompt_tokens"]),
                _ms(r["ttft"]),
                _num(r["prefill_tok_s"], 0),
            ]
            for r in result["prefill"]
        ]
        parts.append(table(["context", "prompt tokens", "TTFT ms", "prefill tok/s"], rows))
    if "prefix_cache" in result:
        pc = result["prefix_cache"]
        rows = [
            [
                str(pc["prompt_tokens"]),
                _ms(pc["ttft_without"]),
                _ms(pc["ttft_with"]),
                _num(pc["speedup"], 2),
                str(pc["cached_tokens"] or "not reported"),
            ]
        ]
        header = [
            "prompt tokens",
            "TTFT new prefix ms",
            "TTFT shared prefix ms",
            "speed-up",
            "cached tokens (server)",
        ]
        parts.append(table(header, rows))
    return "\n\n".join(parts)


def render(result: dict[str, Any]) -> str:
    kind = result.get("kind")
    if kind == "story":
        return story_table(result)
    if kind == "serve":
        return serve_table(result)
    return probes_table(result)


# -- compare ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    name: str
    get: Callable[[dict[str, Any]], float | None]
    higher_is_better: bool


SERVE_METRICS = (
    Metric("output tok/s", lambda lv: lv.get("output_tok_s"), True),
    Metric("req/s", lambda lv: lv.get("req_s"), True),
    Metric("TTFT p50", lambda lv: lv["ttft"].get("p50"), False),
    Metric("TTFT p99", lambda lv: lv["ttft"].get("p99"), False),
    Metric("TPOT p50", lambda lv: lv["tpot"].get("p50"), False),
    Metric("TPOT p99", lambda lv: lv["tpot"].get("p99"), False),
    Metric("e2e p50", lambda lv: lv["e2e"].get("p50"), False),
)
STORY_METRICS = (
    Metric("seed tok/s", lambda r: r.get("seed_tok_s"), True),
    Metric("decode tok/s", lambda r: r.get("decode_tok_s"), True),
    Metric("TTFT", lambda r: r.get("ttft"), False),
)


def _keyed(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if result.get("kind") == "serve":
        return {lv["label"]: lv for lv in result["levels"]}
    if result.get("kind") == "story":
        return {f"{r['words']} words": r for r in result["rows"] if "error" not in r}
    return {}


def compare(a: dict[str, Any], b: dict[str, Any], threshold: float = 0.05) -> dict[str, Any]:
    """Per shared level/row and metric: A, B, relative change, and whether B regressed
    (worse by more than `threshold`, in the metric's own direction)."""
    metrics = SERVE_METRICS if a.get("kind") == "serve" else STORY_METRICS
    left, right = _keyed(a), _keyed(b)
    rows = []
    for key in [k for k in left if k in right]:
        for metric in metrics:
            va, vb = metric.get(left[key]), metric.get(right[key])
            if va is None or vb is None or va == 0:
                continue
            change = (vb - va) / va
            worse = -change if metric.higher_is_better else change
            rows.append(
                {
                    "level": key,
                    "metric": metric.name,
                    "a": va,
                    "b": vb,
                    "change": change,
                    "regression": worse > threshold,
                }
            )
    return {
        "threshold": threshold,
        "rows": rows,
        "regressions": sum(1 for r in rows if r["regression"]),
        "unmatched": sorted(set(left) ^ set(right)),
    }


def compare_table(diff: dict[str, Any]) -> str:
    def fmt(name: str, v: float) -> str:
        return f"{v:.1f}" if "tok/s" in name or "req/s" in name else f"{v * 1000:.1f} ms"

    rows = [
        [
            r["level"],
            r["metric"],
            fmt(r["metric"], r["a"]),
            fmt(r["metric"], r["b"]),
            f"{r['change'] * 100:+.1f}%",
            "REGRESSION" if r["regression"] else "",
        ]
        for r in diff["rows"]
    ]
    text = table(["level", "metric", "A", "B", "change", ""], rows)
    text += f"\n\n{diff['regressions']} regression(s) beyond {diff['threshold'] * 100:.0f}%"
    if diff["unmatched"]:
        text += f"; levels in only one result: {', '.join(diff['unmatched'])}"
    return text


# What makes two results the same workload: the request shape, not the load levels (levels
# are matched by label) nor the model or server (what a comparison is usually about).
WORKLOAD_KEYS = {
    "serve": ("input_len", "output_len", "ignore_eos", "temperature", "num_requests"),
    "story": ("words", "tokens_per_word", "max_tokens"),
    "probes": ("contexts", "prefix_tokens", "trials"),
}


def workload_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """`key: A vs B` for each workload setting the two results differ in (API included)."""
    keys = WORKLOAD_KEYS.get(str(a.get("kind")), ())
    left, right = a.get("settings", {}), b.get("settings", {})
    found = [f"{k}: {left.get(k)} vs {right.get(k)}" for k in keys if left.get(k) != right.get(k)]
    api_a, api_b = a.get("target", {}).get("api"), b.get("target", {}).get("api")
    if api_a != api_b:
        found.append(f"api: {api_a} vs {api_b}")
    return found


def all_failed(result: dict[str, Any]) -> str | None:
    """The first error when not one request of `result` succeeded; None when one did."""
    rows = result.get("rows", [])
    levels = result.get("levels", [])
    prefill = result.get("prefill", [])
    cache = result.get("prefix_cache", {})
    succeeded = (
        any("error" not in r for r in rows)
        or any(lv.get("ok", 0) > 0 for lv in levels)
        or any(r.get("ttft") is not None for r in prefill)
        or cache.get("ttft_without") is not None
        or cache.get("ttft_with") is not None
    )
    if succeeded or not (rows or levels or prefill or cache):
        return None
    errors = [r["error"] for r in rows if r.get("error")]
    errors += [e for lv in levels for e in lv.get("errors", [])]
    errors += [e for r in prefill for e in r.get("errors", [])]
    return errors[0] if errors else "no request produced a token"
