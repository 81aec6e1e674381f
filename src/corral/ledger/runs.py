"""Repository functions over deployments, runs, phases, facts and events (0001_core.sql).

A run is one engine process from launch to exit. Its `state` follows the process
(starting → ready → stopped | failed); `config_json` is the deployment as it was launched,
so a report can say exactly what ran. A phase row's `seconds` is filled in when the next
phase of the run begins (or the run becomes ready). Every write is one transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from corral.ledger.db import Ledger


def deployment_id(ledger: Ledger, name: str) -> int:
    """The id of deployment `name`, created on first use."""
    with ledger.transaction() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO deployments (name, created_at) VALUES (?, ?)",
            (name, time.time()),
        )
        row = conn.execute("SELECT id FROM deployments WHERE name = ?", (name,)).fetchone()
    return int(row[0])


@dataclass(frozen=True)
class NewRun:
    deployment: str
    runtime: str
    engine: str
    command: list[str]
    base_url: str
    log_path: str
    config: dict[str, Any]


def start_run(ledger: Ledger, run: NewRun, *, at: float | None = None) -> int:
    """Record a run that is starting; its id."""
    dep = deployment_id(ledger, run.deployment)
    with ledger.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO runs (deployment_id, started_at, state, runtime, engine, command, "
            "base_url, log_path, config_json) VALUES (?, ?, 'starting', ?, ?, ?, ?, ?, ?)",
            (dep, at or time.time(), run.runtime, run.engine, json.dumps(run.command),
             run.base_url, run.log_path, json.dumps(run.config, sort_keys=True)),
        )  # fmt: skip
    return int(cur.lastrowid or 0)


def record_phase(ledger: Ledger, run_id: int, name: str, at: float) -> None:
    """Phase `name` began at `at`: close the open phase of the run and open this one."""
    with ledger.transaction() as conn:
        _close_open_phase(conn, run_id, at)
        conn.execute(
            "INSERT INTO phases (run_id, name, started_at) VALUES (?, ?, ?)", (run_id, name, at)
        )


def _close_open_phase(conn: Any, run_id: int, at: float) -> None:
    conn.execute(
        "UPDATE phases SET seconds = MAX(0, ? - started_at) WHERE run_id = ? AND seconds IS NULL",
        (at, run_id),
    )


def record_fact(
    ledger: Ledger, run_id: int, name: str, value: float | str, *, unit: str = "", line: str = ""
) -> None:
    with ledger.transaction() as conn:
        conn.execute(
            "INSERT INTO facts (run_id, name, value, unit, source_line) VALUES (?, ?, ?, ?, ?)",
            (run_id, name, str(value), unit, line),
        )
        if name == "engine_version":
            conn.execute("UPDATE runs SET engine_version = ? WHERE id = ?", (str(value), run_id))


def mark_ready(ledger: Ledger, run_id: int, at: float) -> None:
    with ledger.transaction() as conn:
        _close_open_phase(conn, run_id, at)
        conn.execute("UPDATE runs SET state = 'ready', ready_at = ? WHERE id = ?", (at, run_id))


def set_state(ledger: Ledger, run_id: int, state: str) -> None:
    """E.g. `stopping`: a stop is under way, so a supervisor doesn't take the exit for a crash."""
    with ledger.transaction() as conn:
        conn.execute("UPDATE runs SET state = ? WHERE id = ?", (state, run_id))


def run_row(ledger: Ledger, run_id: int) -> dict[str, Any]:
    row = ledger.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    return dict(row) if row is not None else {}


def end_run(ledger: Ledger, run_id: int, state: str, exit_code: int | None, at: float) -> None:
    """The run ended: `stopped` (asked to) or `failed`."""
    with ledger.transaction() as conn:
        _close_open_phase(conn, run_id, at)
        conn.execute(
            "UPDATE runs SET state = ?, ended_at = ?, exit_code = ? WHERE id = ?",
            (state, at, exit_code, run_id),
        )


def record_event(
    ledger: Ledger, deployment: str, kind: str, detail: str = "", run_id: int | None = None
) -> None:
    """A lifecycle event: start, ready, crash, restart, stop, fail, gate."""
    dep = deployment_id(ledger, deployment)
    with ledger.transaction() as conn:
        conn.execute(
            "INSERT INTO events (deployment_id, run_id, at, kind, detail) VALUES (?, ?, ?, ?, ?)",
            (dep, run_id, time.time(), kind, detail),
        )


# ---- reading --------------------------------------------------------------------------


def latest_runs(ledger: Ledger) -> list[dict[str, Any]]:
    """The most recent run of every deployment, newest deployment activity first."""
    rows = ledger.conn.execute(
        "SELECT d.name AS deployment, r.* FROM runs r JOIN deployments d ON d.id = r.deployment_id "
        "WHERE r.id = (SELECT MAX(id) FROM runs WHERE deployment_id = r.deployment_id) "
        "ORDER BY r.started_at DESC"
    ).fetchall()
    return [dict(row) for row in rows]


def phases(ledger: Ledger, run_id: int) -> list[dict[str, Any]]:
    rows = ledger.conn.execute(
        "SELECT name, started_at, seconds FROM phases WHERE run_id = ? ORDER BY id", (run_id,)
    ).fetchall()
    return [dict(row) for row in rows]


def facts(ledger: Ledger, run_id: int) -> dict[str, str]:
    """The run's facts by name; a later fact of a name supersedes an earlier one."""
    rows = ledger.conn.execute(
        "SELECT name, value, unit FROM facts WHERE run_id = ? ORDER BY id", (run_id,)
    ).fetchall()
    return {row["name"]: f"{row['value']} {row['unit']}".strip() for row in rows}


def events(ledger: Ledger, deployment: str, limit: int = 20) -> list[dict[str, Any]]:
    rows = ledger.conn.execute(
        "SELECT e.at, e.kind, e.detail, e.run_id FROM events e "
        "JOIN deployments d ON d.id = e.deployment_id WHERE d.name = ? "
        "ORDER BY e.id DESC LIMIT ?",
        (deployment, limit),
    ).fetchall()
    return [dict(row) for row in reversed(rows)]


def stopped_because(ledger: Ledger, run_id: int) -> str | None:
    """Why a run was stopped (its `stop` event): e.g. evicted, or idle past idle_stop."""
    row = ledger.conn.execute(
        "SELECT detail FROM events WHERE run_id = ? AND kind = 'stop' ORDER BY id DESC LIMIT 1",
        (run_id,),
    ).fetchone()
    return str(row[0]) if row is not None else None


def status(ledger: Ledger) -> list[dict[str, Any]]:
    """Per deployment: its last run with phases, facts and recent events (`corral status`)."""
    result = []
    for run in latest_runs(ledger):
        run_id = int(run["id"])
        result.append(
            {
                "deployment": run["deployment"],
                "run": run_id,
                "state": run["state"],
                "engine": run["engine"],
                "engine_version": run["engine_version"],
                "base_url": run["base_url"],
                "started_at": run["started_at"],
                "ready_at": run["ready_at"],
                "ended_at": run["ended_at"],
                "exit_code": run["exit_code"],
                "log_path": run["log_path"],
                "phases": phases(ledger, run_id),
                "facts": facts(ledger, run_id),
                "events": events(ledger, run["deployment"], limit=10),
                "stopped_because": stopped_because(ledger, run_id),
            }
        )
    return result
