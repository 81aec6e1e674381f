"""Read everything the report needs for one deployment out of the ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from corral.errors import CorralError
from corral.ledger import runs
from corral.ledger.db import Ledger
from corral.ledger.hosts import HostEntry, RunHost, fleet_by_host, run_hosts
from corral.ledger.launches import Launch, fact_rows, launch_of, runs_of
from corral.tune.store import searches_of


@dataclass(frozen=True)
class FactValue:
    value: str
    unit: str
    line: str

    def number(self) -> float | None:
        try:
            return float(self.value)
        except ValueError:
            return None


@dataclass
class RunRecord:
    """One run with what was recorded about it."""

    row: dict[str, Any]
    launch: Launch | None
    facts: dict[str, FactValue]
    phases: list[dict[str, Any]]
    events: list[dict[str, Any]]

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.row["config_json"])
        return data

    @property
    def recipe(self) -> dict[str, Any] | None:
        raw = self.row.get("recipe_json")
        return json.loads(raw) if raw else None

    @property
    def startup_s(self) -> float | None:
        if self.row["ready_at"] is None:
            return None
        return float(self.row["ready_at"]) - float(self.row["started_at"])


@dataclass
class Logbook:
    deployment: str
    current: RunRecord
    history: list[RunRecord]
    verify: list[dict[str, Any]] = field(default_factory=list)
    bench: list[dict[str, Any]] = field(default_factory=list)
    hosts: list[RunHost] = field(default_factory=list)  # where the current run ran
    fleet: list[HostEntry] = field(default_factory=list)  # every host, by host
    tuning: list[dict[str, Any]] = field(default_factory=list)


def _facts(ledger: Ledger, run_id: int) -> dict[str, FactValue]:
    """Facts by name; a later fact of a name supersedes an earlier one (as the engine's)."""
    return {
        r["name"]: FactValue(r["value"], r["unit"], r["source_line"])
        for r in fact_rows(ledger, run_id)
    }


def _run_record(ledger: Ledger, row: dict[str, Any]) -> RunRecord:
    run_id = int(row["id"])
    events = [
        e for e in runs.events(ledger, row["deployment"], limit=10_000) if e["run_id"] == run_id
    ]
    return RunRecord(
        row, launch_of(ledger, run_id), _facts(ledger, run_id), runs.phases(ledger, run_id), events
    )


def _verify_rows(ledger: Ledger, run_id: int) -> list[dict[str, Any]]:
    """The newest verify suite run against this engine run (0002's tables)."""
    row = ledger.conn.execute(
        "SELECT id FROM verify_runs WHERE run_id = ? ORDER BY id DESC LIMIT 1", (run_id,)
    ).fetchone()
    return [] if row is None else verify_results(ledger, int(row["id"]))


def verify_results(ledger: Ledger, verify_run_id: int) -> list[dict[str, Any]]:
    """Each check's result of one suite run, in the order they ran."""
    results = ledger.conn.execute(
        "SELECT name, status, seconds, detail FROM verify_results WHERE verify_run_id = ? "
        "ORDER BY id",
        (verify_run_id,),
    ).fetchall()
    return [dict(r) for r in results]


def _bench_results(ledger: Ledger, run_id: int) -> list[dict[str, Any]]:
    """Benchmarks measured against this engine run (0003's table), oldest first."""
    rows = ledger.conn.execute(
        "SELECT id, kind, at, result_json FROM bench_results WHERE run_id = ? ORDER BY id",
        (run_id,),
    ).fetchall()
    return [
        {"id": r["id"], "kind": r["kind"], "at": r["at"], **json.loads(r["result_json"])}
        for r in rows
    ]


def collect(ledger: Ledger, deployment: str) -> Logbook:
    """The logbook of `deployment`: its newest ready run (else newest run) and history."""
    rows = runs_of(ledger, deployment)
    if not rows:
        raise CorralError(
            f"the ledger at {ledger.path} has no runs of {deployment!r}",
            hint=f"deploy it first: corral deploy {deployment}",
        )
    history = [_run_record(ledger, row) for row in rows]
    ready = [r for r in history if r.row["ready_at"] is not None]
    current = ready[-1] if ready else history[-1]
    return Logbook(
        deployment,
        current,
        history,
        verify=_verify_rows(ledger, current.id),
        bench=_bench_results(ledger, current.id),
        hosts=run_hosts(ledger, current.id),
        fleet=fleet_by_host(ledger),
        tuning=searches_of(ledger, deployment),
    )
