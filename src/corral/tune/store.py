"""The tune tables (migration 0021): searches and their finished candidates."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from corral.ledger.db import Ledger


def search_key(deployment: str, workload: str, slo: str, names: list[str]) -> str:
    text = json.dumps([deployment, workload, slo, names])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def open_search(ledger: Ledger, deployment: str, key: str, workload: str, slo: str) -> int:
    """The unfinished search with this key (resumed), else a new one."""
    row = ledger.conn.execute(
        "SELECT id FROM tune_runs WHERE key = ? AND state != 'done' ORDER BY id DESC LIMIT 1",
        (key,),
    ).fetchone()
    if row is not None:
        ledger.conn.execute("UPDATE tune_runs SET state = 'running' WHERE id = ?", (row["id"],))
        ledger.conn.commit()
        return int(row["id"])
    cur = ledger.conn.execute(
        "INSERT INTO tune_runs (deployment, key, workload, slo, started_at, state) "
        "VALUES (?, ?, ?, ?, ?, 'running')",
        (deployment, key, workload, slo, time.time()),
    )
    ledger.conn.commit()
    return int(cur.lastrowid or 0)


def finished(ledger: Ledger, tune_id: int) -> dict[str, dict[str, Any]]:
    rows = ledger.conn.execute(
        "SELECT name, result_json FROM tune_candidates WHERE tune_id = ?", (tune_id,)
    ).fetchall()
    return {r["name"]: json.loads(r["result_json"]) for r in rows}


def record_candidate(ledger: Ledger, tune_id: int, outcome: dict[str, Any]) -> None:
    ledger.conn.execute(
        "INSERT OR REPLACE INTO tune_candidates (tune_id, name, status, reason, goodput, "
        "spread, decode_tok_s, seconds, result_json, at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (tune_id, outcome["name"], outcome["status"], outcome.get("reason"),
         outcome.get("goodput"), outcome.get("spread"), outcome.get("decode_tok_s"),
         outcome.get("seconds"), json.dumps(outcome), time.time()),
    )  # fmt: skip
    ledger.conn.commit()


def close_search(ledger: Ledger, tune_id: int, state: str, result: dict[str, Any]) -> None:
    ledger.conn.execute(
        "UPDATE tune_runs SET state = ?, ended_at = ?, result_json = ? WHERE id = ?",
        (state, time.time(), json.dumps(result), tune_id),
    )
    ledger.conn.commit()


def searches_of(ledger: Ledger, deployment: str) -> list[dict[str, Any]]:
    """Finished searches of `deployment`, oldest first, with their results."""
    rows = ledger.conn.execute(
        "SELECT id, workload, slo, state, started_at, result_json FROM tune_runs "
        "WHERE deployment = ? AND result_json IS NOT NULL ORDER BY id",
        (deployment,),
    ).fetchall()
    return [{**dict(r), "result": json.loads(r["result_json"])} for r in rows]
