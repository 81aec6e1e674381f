"""The gate the controller calls, the ledger rows it leaves, and the CLI around them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from corral.config import Deployment, VerifyGate
from corral.ledger import open_ledger
from corral.verify.gate import run_gate
from corral.verify.model import Status
from corral.verify.store import latest_verify_run, verify_summary
from tests.support.scripted import scripted_engine


def _deployment(gate: bool, checks: list[str] | None) -> Deployment:
    return Deployment(name="scripted", model="x/y", verify=VerifyGate(gate=gate, checks=checks))


async def test_gate_passes_and_records_its_checks(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    with scripted_engine() as engine:
        passed = await run_gate(_deployment(True, ["chat", "streaming"]), engine.base_url, ledger)
    assert passed
    with open_ledger(ledger) as db:
        run = latest_verify_run(db, "scripted")
    assert run is not None
    assert run.gate
    assert [(r.name, r.status) for r in run.results] == [
        ("chat", Status.PASS),
        ("streaming", Status.PASS),
    ]


async def test_gate_fails_on_a_failing_check(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    with scripted_engine("--quirk", "no-done") as engine:
        passed = await run_gate(_deployment(True, ["streaming"]), engine.base_url, ledger)
    assert not passed
    with open_ledger(ledger) as db:
        run = latest_verify_run(db, "scripted")
    assert run is not None
    assert run.count(Status.FAIL) == 1
    assert "[DONE]" in run.results[0].detail
    with open_ledger(ledger) as db:
        summary = verify_summary(db, "scripted")
        assert verify_summary(db, "never-verified") is None
    assert summary is not None
    assert summary["passed"] is False
    assert summary["counts"] == {"pass": 0, "fail": 1, "skip": 0}
    assert list(summary["failed"]) == ["streaming"]


async def test_gate_off_runs_nothing(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    # No engine at this address: a gate that ran would fail.
    assert await run_gate(_deployment(False, None), "http://127.0.0.1:9", ledger)
    assert not ledger.exists()


def _corral(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRAL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], capture_output=True, text=True, env=env,
        timeout=120, check=False,
    )  # fmt: skip


def test_cli_json_and_exit_code(tmp_path: Path) -> None:
    with scripted_engine("--quirk", "ignore-stop") as engine:
        url = engine.base_url
        ok = _corral("verify", url, "-m", "scripted", "--checks", "chat,tool-auto", "--json",
                     home=tmp_path)  # fmt: skip
        bad = _corral("verify", url, "-m", "scripted", "--checks", "stop", "--json", home=tmp_path)
    assert ok.returncode == 0, ok.stderr
    rows = json.loads(ok.stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("chat", "pass"), ("tool-auto", "skip")]
    assert {"name", "status", "detail", "seconds"} <= set(rows[0])
    assert bad.returncode == 1
    assert json.loads(bad.stdout)[0]["status"] == "fail"


def test_cli_verifies_a_deployment_from_the_config_and_records_it(tmp_path: Path) -> None:
    with scripted_engine() as engine:
        config = tmp_path / "corral.yaml"
        dep = {"name": "scripted", "model": "x/y", "port": engine.port,
               "capabilities": {"context_length": 2048}}  # fmt: skip
        config.write_text(yaml.safe_dump({"deployments": [dep]}))
        done = _corral("verify", "scripted", "-c", str(config), "--checks", "models,needle",
                       home=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "needle" in done.stdout
    with open_ledger(tmp_path / "ledger.sqlite3") as db:
        run = latest_verify_run(db, "scripted")
    assert run is not None
    assert run.base_url == engine.base_url
    assert [r.name for r in run.results] == ["models", "needle"]


def test_cli_unknown_deployment_is_a_clear_error(tmp_path: Path) -> None:
    done = _corral("verify", "nope", home=tmp_path)
    assert done.returncode == 2
    assert "no deployment named 'nope'" in done.stderr
    assert "Traceback" not in done.stderr
