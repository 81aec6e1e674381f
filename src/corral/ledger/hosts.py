"""Repository functions over `run_hosts` (0017) and `host_checks` (0018): the fleet by host.

`fleet_by_host` is what `corral status` and the report's "Related systems" section read:
every host known from a check or a run, its last-checked hardware, and the deployments
whose latest run placed a rank there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from corral.ledger.db import Ledger


@dataclass(frozen=True)
class RunHost:
    run_id: int
    host: str
    address: str = ""
    rank: int = 0
    role: str = "head"
    pid: int | None = None
    pid_started_at: float | None = None


@dataclass
class HostEntry:
    """One host as the logbook shows it."""

    host: str
    address: str = ""
    hardware: str | None = None
    ok: bool | None = None
    checked_at: float | None = None
    deployments: list[str] = field(default_factory=list)


def record_run_host(ledger: Ledger, entry: RunHost) -> None:
    with ledger.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO run_hosts (run_id, rank, host, address, role, pid, "
            "pid_started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.run_id, entry.rank, entry.host, entry.address, entry.role, entry.pid,
             entry.pid_started_at),
        )  # fmt: skip


def run_hosts(ledger: Ledger, run_id: int) -> list[RunHost]:
    rows = ledger.conn.execute(
        "SELECT run_id, host, address, rank, role, pid, pid_started_at FROM run_hosts "
        "WHERE run_id = ? ORDER BY rank",
        (run_id,),
    ).fetchall()
    return [RunHost(*row) for row in rows]


def record_check(ledger: Ledger, report: dict[str, Any], *, at: float | None = None) -> None:
    """Store one host's `corral hosts check --json` entry."""
    hardware = report.get("hardware")
    with ledger.transaction() as conn:
        conn.execute(
            "INSERT INTO host_checks (host, address, checked_at, ok, hardware_summary, "
            "hardware_json, findings_json, clock_skew_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (report["host"], report["address"], at or time.time(), int(bool(report["ok"])),
             report.get("hardware_summary"), json.dumps(hardware) if hardware else None,
             json.dumps(report["findings"]), report.get("clock_skew_s")),
        )  # fmt: skip


def fleet_by_host(ledger: Ledger) -> list[HostEntry]:
    """Every host seen, with its last check and the deployments last run there."""
    hosts: dict[str, HostEntry] = {}
    for host, address, hardware, ok, at in ledger.conn.execute(
        "SELECT host, address, hardware_summary, ok, MAX(checked_at) FROM host_checks GROUP BY host"
    ):
        hosts[host] = HostEntry(host, address, hardware, bool(ok), at)
    for host, address, name in ledger.conn.execute(
        "SELECT rh.host, rh.address, d.name FROM run_hosts rh JOIN runs r ON r.id = rh.run_id "
        "JOIN deployments d ON d.id = r.deployment_id WHERE r.id = (SELECT MAX(id) FROM runs "
        "WHERE deployment_id = d.id) ORDER BY rh.host, d.name"
    ):
        entry = hosts.setdefault(host, HostEntry(host, address))
        if name not in entry.deployments:
            entry.deployments.append(name)
    return sorted(hosts.values(), key=lambda e: e.host)
