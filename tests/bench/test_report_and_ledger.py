"""Reports, compare, and bench results in the ledger (SQLite on disk)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.bench import report
from corral.bench.results import (
    Target,
    load_file,
    load_from_ledger,
    save_to_ledger,
)
from corral.errors import BenchError
from corral.ledger.db import open_ledger


def level(label: str, tok_s: float, ttft_p50: float, tpot_p50: float = 0.02) -> dict[str, Any]:
    dist = {"p50": ttft_p50, "p99": ttft_p50 * 2, "mean": ttft_p50}
    return {
        "label": label,
        "kind": "concurrency",
        "level": 1.0,
        "ok": 10,
        "requests": 10,
        "output_tok_s": tok_s,
        "steady_output_tok_s": None,
        "req_s": tok_s / 100,
        "goodput_req_s": None,
        "ttft": dist,
        "tpot": {"p50": tpot_p50, "p99": tpot_p50},
        "chunk_gap": {"p99": 0.03},
        "e2e": {"p50": 1.0},
        "queue_delay": {"p99": 0.0},
        "loop_lag": {"p99": 0.001},
        "notes": [],
        "errors": [],
    }


def serve_result(*levels: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "serve", "settings": {}, "notes": [], "levels": list(levels)}


def test_compare_flags_a_throughput_drop_and_a_ttft_rise() -> None:
    a = serve_result(level("c=1", 100.0, 0.2), level("c=4", 300.0, 0.3))
    b = serve_result(level("c=1", 99.0, 0.2), level("c=4", 240.0, 0.4), level("c=8", 1.0, 1.0))
    diff = report.compare(a, b, threshold=0.05)
    flagged = {(r["level"], r["metric"]) for r in diff["rows"] if r["regression"]}
    assert ("c=4", "output tok/s") in flagged
    assert ("c=4", "TTFT p50") in flagged
    assert ("c=1", "output tok/s") not in flagged  # -1% is inside the threshold
    assert diff["unmatched"] == ["c=8"]
    text = report.compare_table(diff)
    assert "REGRESSION" in text
    assert "c=8" in text


def test_compare_improvement_is_not_a_regression() -> None:
    diff = report.compare(
        serve_result(level("c=1", 100.0, 0.2)), serve_result(level("c=1", 150.0, 0.1))
    )
    assert diff["regressions"] == 0


def test_serve_table_shows_levels_and_notes() -> None:
    lv = level("c=2", 123.4, 0.25)
    lv["notes"] = ["3 of 10 responses carried no usage"]
    text = report.render(serve_result(lv))
    assert "| c=2 | 10/10 | 123.4 |" in text
    assert "250.0 / 500.0" in text
    assert "c=2: 3 of 10 responses carried no usage" in text


def test_story_table_has_the_seed_columns() -> None:
    row = {
        "words": 200,
        "max_tokens": 300,
        "tokens": 300,
        "reasoning_tokens": 40,
        "visible_tokens": 260,
        "token_source": "usage",
        "seconds": 9.287,
        "seed_tok_s": 32.3,
        "ttft": 0.5,
        "ttfvt": 1.7,
        "decode_tok_s": 34.1,
    }
    text = report.render({"kind": "story", "rows": [row]})
    assert "| 200-word story | 300 | 40 | 9.287 | 32.3 | 500.0 | 1700.0 | 34.1 |" in text


def test_results_round_trip_through_the_ledger(tmp_path: Path) -> None:
    result = serve_result(level("c=1", 100.0, 0.2))
    with open_ledger(tmp_path / "ledger.sqlite3") as ledger:
        bench_id = save_to_ledger(ledger, Target("http://x", "smol", None), "smol", result)
        assert load_from_ledger(ledger, bench_id) == result
        names = {
            r["name"]
            for r in ledger.conn.execute(
                "SELECT name FROM bench_figures WHERE bench_id = ?", (bench_id,)
            )
        }
        assert {"output_tok_s", "ttft_p50", "tpot_p99"} <= names
        with pytest.raises(BenchError, match="no bench result"):
            load_from_ledger(ledger, bench_id + 1)


def test_load_file_rejects_what_is_not_a_result(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(BenchError, match="not a corral bench result"):
        load_file(bad)
    with pytest.raises(BenchError, match="no such result file"):
        load_file(tmp_path / "missing.json")
