"""Where bench results live: JSON files, and the ledger (`bench_results`, migration 0003).

A target (a URL or a deployment name) is resolved by `corral.naming`, as for every command.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from corral.errors import BenchError
from corral.ledger.db import Ledger
from corral.naming import EndpointRef

HEADLINES = (
    ("output_tok_s", "tok/s"),
    ("req_s", "req/s"),
    ("goodput_req_s", "req/s"),
)


# What a result was measured against (a URL, or a deployment's live gateway or engine).
Target = EndpointRef


def _deployment_id(ledger: Ledger, name: str) -> int:
    row = ledger.conn.execute("SELECT id FROM deployments WHERE name = ?", (name,)).fetchone()
    if row is not None:
        return int(row["id"])
    cur = ledger.conn.execute(
        "INSERT INTO deployments (name, created_at) VALUES (?, ?)", (name, time.time())
    )
    return int(cur.lastrowid or 0)


def _figures(result: dict[str, Any]) -> list[tuple[str, str, float, str]]:
    out = []
    for lv in result.get("levels", []):
        for key, unit in HEADLINES:
            if lv.get(key) is not None:
                out.append((lv["label"], key, float(lv[key]), unit))
        for key in ("ttft", "tpot"):
            for p in ("p50", "p99"):
                if p in lv.get(key, {}):
                    out.append((lv["label"], f"{key}_{p}", float(lv[key][p]), "s"))
    for row in result.get("rows", []):
        for key in ("seed_tok_s", "decode_tok_s"):
            if row.get(key) is not None:
                out.append((f"{row['words']} words", key, float(row[key]), "tok/s"))
    return out


def save_to_ledger(ledger: Ledger, target: Target, model: str, result: dict[str, Any]) -> int:
    """Record one result; returns its id (what `corral bench compare` accepts)."""
    with ledger.transaction() as conn:
        dep = _deployment_id(ledger, target.deployment) if target.deployment else None
        cur = conn.execute(
            "INSERT INTO bench_results (deployment_id, run_id, kind, at, base_url, model,"
            " result_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                dep,
                target.run_id,
                result["kind"],
                time.time(),
                target.base_url,
                model,
                json.dumps(result),
            ),
        )
        bench_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO bench_figures (bench_id, label, name, value, unit) VALUES (?,?,?,?,?)",
            [(bench_id, *fig) for fig in _figures(result)],
        )
    return bench_id


def load_from_ledger(ledger: Ledger, bench_id: int) -> dict[str, Any]:
    row = ledger.conn.execute(
        "SELECT result_json FROM bench_results WHERE id = ?", (bench_id,)
    ).fetchone()
    if row is None:
        raise BenchError(f"no bench result with id {bench_id} in {ledger.path}")
    result: dict[str, Any] = json.loads(row["result_json"])
    return result


def load_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"no such result file: {path}") from None
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path} is not a bench result (JSON): {exc}") from None
    if not isinstance(data, dict) or data.get("kind") not in ("serve", "story", "probes"):
        raise BenchError(
            f"{path} is not a corral bench result",
            hint="write one with `corral bench serve ... --json > result.json`",
        )
    return data
