"""Repository functions over `run_launches` (migration 0005) and the run rows deploy reads.

Writes are one transaction each, so a `corral deploy` killed with SIGKILL leaves either a
run with its launch row or none; a run left `starting`/`ready` by a killed corral is found
by `live_run` and settled by the next deploy or stop (its process is checked first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from corral.ledger.db import Ledger


@dataclass(frozen=True)
class Launch:
    run_id: int
    served_name: str
    shell_command: str
    pid: int | None = None
    pid_started_at: float | None = None
    container: str | None = None
    container_id: str | None = None
    recipe: str | None = None
    hardware_kind: str | None = None
    hardware: dict[str, Any] | None = None
    env: dict[str, str] | None = None


def record_launch(ledger: Ledger, launch: Launch, recipe_json: dict[str, Any] | None) -> None:
    with ledger.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO run_launches (run_id, pid, pid_started_at, container, "
            "container_id, served_name, recipe, hardware_kind, hardware_json, shell_command, "
            "env_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                launch.run_id,
                launch.pid,
                launch.pid_started_at,
                launch.container,
                launch.container_id,
                launch.served_name,
                launch.recipe,
                launch.hardware_kind,
                json.dumps(launch.hardware) if launch.hardware is not None else None,
                launch.shell_command,
                json.dumps(launch.env or {}),
            ),
        )
        if recipe_json is not None:
            conn.execute(
                "UPDATE runs SET recipe_json = ? WHERE id = ?",
                (json.dumps(recipe_json, sort_keys=True), launch.run_id),
            )


def _launch_from(row: Any) -> Launch:
    return Launch(
        run_id=int(row["run_id"]),
        served_name=row["served_name"],
        shell_command=row["shell_command"],
        pid=row["pid"],
        pid_started_at=row["pid_started_at"],
        container=row["container"],
        container_id=row["container_id"],
        recipe=row["recipe"],
        hardware_kind=row["hardware_kind"],
        hardware=json.loads(row["hardware_json"]) if row["hardware_json"] else None,
        env=json.loads(row["env_json"] or "{}"),
    )


RUN_COLUMNS = (
    "SELECT d.name AS deployment, r.*, l.run_id AS launch_run FROM runs r "
    "JOIN deployments d ON d.id = r.deployment_id "
    "LEFT JOIN run_launches l ON l.run_id = r.id "
)


def runs_of(ledger: Ledger, deployment: str) -> list[dict[str, Any]]:
    """Every run of `deployment`, oldest first."""
    rows = ledger.conn.execute(
        RUN_COLUMNS + "WHERE d.name = ? ORDER BY r.id", (deployment,)
    ).fetchall()
    return [dict(row) for row in rows]


def live_run(ledger: Ledger, deployment: str) -> dict[str, Any] | None:
    """The newest run of `deployment` that has not ended (it may have died unrecorded)."""
    rows = [r for r in runs_of(ledger, deployment) if r["ended_at"] is None]
    return rows[-1] if rows else None


def launch_of(ledger: Ledger, run_id: int) -> Launch | None:
    row = ledger.conn.execute("SELECT * FROM run_launches WHERE run_id = ?", (run_id,)).fetchone()
    return _launch_from(row) if row is not None else None


def fact_rows(ledger: Ledger, run_id: int) -> list[dict[str, Any]]:
    """Every fact of a run in the order recorded (the report keeps the last of each name)."""
    rows = ledger.conn.execute(
        "SELECT name, value, unit, source_line FROM facts WHERE run_id = ? ORDER BY id", (run_id,)
    ).fetchall()
    return [dict(row) for row in rows]
