"""Verify results in the ledger (tables `verify_runs`, `verify_results`: 0002_verify.sql).

One suite run is one `verify_runs` row with its counts, plus one `verify_results` row per
check, written in one transaction. `latest_verify_run` is what `corral status` shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from corral.ledger import runs
from corral.ledger.db import Ledger
from corral.verify.model import CheckResult, Status, suite_passed


@dataclass(frozen=True)
class VerifyRun:
    id: int
    deployment: str | None
    base_url: str
    model: str
    started_at: float
    seconds: float
    gate: bool
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return suite_passed(self.results)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)


@dataclass(frozen=True)
class NewVerifyRun:
    """What to record: `deployment` None for a bare URL; `run_id` ties it to an engine run."""

    base_url: str
    model: str
    results: list[CheckResult]
    deployment: str | None = None
    run_id: int | None = None
    gate: bool = False
    started_at: float | None = None


def record_verify_run(ledger: Ledger, new: NewVerifyRun) -> int:
    """Store one suite run and its results; returns the verify run's id."""
    dep_id = runs.deployment_id(ledger, new.deployment) if new.deployment else None
    started = new.started_at if new.started_at is not None else time.time()
    counts = [sum(1 for r in new.results if r.status is s) for s in Status]
    with ledger.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO verify_runs (deployment_id, run_id, base_url, model, started_at, "
            "seconds, passed, failed, skipped, gate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (dep_id, new.run_id, new.base_url, new.model, started,
             sum(r.seconds for r in new.results), *counts, int(new.gate)),
        )  # fmt: skip
        run_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO verify_results (verify_run_id, name, status, seconds, detail) "
            "VALUES (?, ?, ?, ?, ?)",
            [(run_id, r.name, r.status.value, r.seconds, r.detail) for r in new.results],
        )
    return run_id


def latest_verify_run(ledger: Ledger, deployment: str) -> VerifyRun | None:
    """The most recent suite run against `deployment`, with its results; None if never."""
    row = ledger.conn.execute(
        "SELECT v.* FROM verify_runs v JOIN deployments d ON d.id = v.deployment_id "
        "WHERE d.name = ? ORDER BY v.started_at DESC, v.id DESC LIMIT 1",
        (deployment,),
    ).fetchone()
    if row is None:
        return None
    results = [
        CheckResult(r["name"], Status(r["status"]), r["detail"], r["seconds"])
        for r in ledger.conn.execute(
            "SELECT * FROM verify_results WHERE verify_run_id = ? ORDER BY id", (row["id"],)
        )
    ]
    return VerifyRun(
        id=row["id"], deployment=deployment, base_url=row["base_url"], model=row["model"],
        started_at=row["started_at"], seconds=row["seconds"], gate=bool(row["gate"]),
        results=results,
    )  # fmt: skip


def verify_summary(ledger: Ledger, deployment: str) -> dict[str, Any] | None:
    """The last suite run against `deployment` in a form `corral status` can print or dump."""
    run = latest_verify_run(ledger, deployment)
    if run is None:
        return None
    return {
        "verify_run": run.id,
        "at": run.started_at,
        "gate": run.gate,
        "passed": run.passed,
        "counts": {s.value: run.count(s) for s in Status},
        "failed": {r.name: r.detail for r in run.results if r.status is Status.FAIL},
    }
