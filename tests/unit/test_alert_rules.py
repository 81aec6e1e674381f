"""deploy/prometheus/corral-alerts.yml, checked and unit-tested by Prometheus's own promtool
(Debian's `prometheus` package, which .ci/run installs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "corral-alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "corral-alerts.test.yml"
# What the console issue asks alerts for, by the names the rules file gives them.
WANTED = {
    "CorralEngineDown", "CorralNoRoutableReplica", "CorralTTFTOverSLO",
    "CorralKVCacheNearlyFull", "CorralQueueGrowing", "CorralDeploymentRestarting",
}  # fmt: skip


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (.ci/run does)")
    return subprocess.run(
        [tool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_file_is_valid() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(WANTED)} rules found" in checked.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_wanted_alert_exists_and_has_a_case_that_fires() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = {r["alert"] for group in rules["groups"] for r in group["rules"]}
    assert names == WANTED
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        check["alertname"]
        for case in cases
        for check in case["alert_rule_test"]
        if check.get("exp_alerts")
    }
    quiet = {
        check["alertname"]
        for case in cases
        for check in case["alert_rule_test"]
        if not check.get("exp_alerts")
    }
    assert fired == WANTED  # each alert is shown firing ...
    # ... and staying quiet: an empty expectation, or (restarts) a series left out of the
    # expected list, which promtool compares exactly
    assert WANTED - quiet == {"CorralDeploymentRestarting"}
