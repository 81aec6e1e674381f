"""run_hosts (0017) and host_checks (0018): the fleet by host, as status and the report read it."""

from __future__ import annotations

from pathlib import Path

from corral.ledger import hosts, runs
from corral.ledger.db import open_ledger


def _run(ledger: object, name: str) -> int:
    new = runs.NewRun(name, "process", "vllm", ["vllm", "serve"], "http://127.0.0.1:1", "/l", {})
    return runs.start_run(ledger, new)  # type: ignore[arg-type]


def test_fleet_by_host_joins_checks_and_the_latest_runs(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "ledger.sqlite3") as ledger:
        old = _run(ledger, "gpt-oss-120b")
        hosts.record_run_host(ledger, hosts.RunHost(old, "venus", "10.77.0.13"))
        run = _run(ledger, "gpt-oss-120b")  # the latest run moved to two Sparks
        hosts.record_run_host(ledger, hosts.RunHost(run, "pegasus", "10.77.0.11", 0, "head", 41))
        hosts.record_run_host(ledger, hosts.RunHost(run, "stella", "10.77.0.12", 1, "worker", 42))
        check = {"host": "venus", "address": "10.77.0.13", "ok": True, "findings": []}
        hosts.record_check(ledger, check | {"hardware_summary": "rtx-pro-6000: 1× RTX PRO 6000"})
        assert [h.role for h in hosts.run_hosts(ledger, run)] == ["head", "worker"]
        fleet = {entry.host: entry for entry in hosts.fleet_by_host(ledger)}
    assert fleet["pegasus"].deployments == ["gpt-oss-120b"]
    assert fleet["stella"].deployments == ["gpt-oss-120b"]
    assert fleet["venus"].deployments == []  # its run is no longer the latest
    assert fleet["venus"].hardware == "rtx-pro-6000: 1× RTX PRO 6000"
    assert fleet["venus"].ok is True


def test_the_logbook_shows_the_fleet_by_host(tmp_path: Path) -> None:
    from corral.report.logbook import collect
    from corral.report.markdown import related_systems

    with open_ledger(tmp_path / "ledger.sqlite3") as ledger:
        run = _run(ledger, "gpt-oss-120b")
        hosts.record_run_host(ledger, hosts.RunHost(run, "pegasus", "10.77.0.11", 0, "head", 41))
        check = {"host": "venus", "address": "v", "ok": True, "findings": []}
        hosts.record_check(ledger, check | {"hardware_summary": "rtx-pro-6000: 1× RTX PRO 6000"})
        lines = related_systems(collect(ledger, "gpt-oss-120b"))
    assert lines[0] == "## Related Systems"
    assert "- **pegasus**: hardware not checked; this deployment, rank 0 (head, pid 41)" in lines
    assert "- **venus**: rtx-pro-6000: 1× RTX PRO 6000 (no active deployment)" in lines
