"""A real deployment of the default (SmolLM2 on vLLM CPU) through `corral deploy`, its
report checked against the ledger and the engine's own log, then `corral stop`.

Starts its own engine (the deployment's settings, detached), so it holds `vllm_lock`.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral.engines.vllm import facts_of, parse_log
from corral.ledger.db import open_ledger
from corral.ledger.launches import fact_rows, runs_of
from tests.support.corral_cli import corral, default_config_file, kill_leftover
from tests.support.vllm import free_port

pytestmark = pytest.mark.integration
NAME = "smollm2-135m-instruct"


@dataclass
class Deployed:
    config: Path
    home: Path
    report: str
    deploy_output: str

    def corral(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return corral(*args, "--config", str(self.config), timeout=timeout)


@pytest.fixture(scope="module")
def deployed(
    vllm_lock: None, default_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    tmp = tmp_path_factory.mktemp("deploy")
    config = default_config_file(tmp, default_model_path, free_port())
    home = tmp / "home"
    done = corral(
        "deploy", NAME, "--config", str(config), "--checks", "models,chat,streaming,tool-named",
        "--bench", "--bench-max-tokens", "32", timeout=500,
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        out = tmp / "report.md"
        made = corral("report", NAME, "--config", str(config), "--out", str(out))
        assert made.returncode == 0, made.stderr
        yield Deployed(config, home, out.read_text(), done.stdout + done.stderr)
    finally:
        stopped = corral("stop", NAME, "--config", str(config))
        kill_leftover(home, NAME)
        assert stopped.returncode == 0, stopped.stderr


def ledger_state(home: Path) -> tuple[dict[str, object], dict[str, str], list[dict[str, object]]]:
    """(run row, facts by name, phases) of the newest run."""
    with open_ledger(home / "ledger.sqlite3") as ledger:
        run = runs_of(ledger, NAME)[-1]
        facts = {r["name"]: r["value"] for r in fact_rows(ledger, int(run["id"]))}
        phases = [
            dict(r)
            for r in ledger.conn.execute(
                "SELECT name, seconds FROM phases WHERE run_id = ? ORDER BY id", (run["id"],)
            )
        ]
    return run, facts, phases


def test_report_figures_match_the_ledger_and_the_engine_log(deployed: Deployed) -> None:
    run, facts, _ = ledger_state(deployed.home)
    log_facts = facts_of(parse_log(Path(str(run["log_path"])).read_text(), year=2026))
    for name in ("kv_cache_tokens", "max_concurrency", "weights_load_s", "init_engine_s"):
        assert float(facts[name]) == float(log_facts[name]), name
    report = deployed.report
    assert f"| KV cache capacity | {int(float(facts['kv_cache_tokens'])):,} tokens |" in report
    assert f"{facts['max_concurrency']} x" in report
    assert f"weights load {facts['weights_load_s']} s" in report
    assert f"engine init (profile, KV cache, warm-up) {facts['init_engine_s']} s" in report
    assert f"**Total**: {facts['startup_s']} s" in report
    assert str(log_facts["engine_version"]) in report
    assert str(run["engine_version"]) == str(log_facts["engine_version"])


def test_report_has_the_seeds_sections_and_the_exact_command(deployed: Deployed) -> None:
    headings = re.findall(r"^#+ (.+)$", deployed.report, re.MULTILINE)
    for section in ("Overview", "Hardware", "Model Specifications", "Run Command",
                    "Throughput Tests", "Memory Usage and KV Capacity",
                    "Startup Time Breakdown", "API Access", "Features", "Known Issues",
                    "Deployment History"):  # fmt: skip
        assert section in headings, section
    rendered = deployed.corral("render", NAME)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.strip() in deployed.report


def test_startup_phases_in_report_match_ledger(deployed: Deployed) -> None:
    _, facts, phases = ledger_state(deployed.home)
    names = [p["name"] for p in phases]
    assert names[0] == "launch"
    assert "load_weights" in names
    rows = re.findall(r"^\| (\d+) \| (.+?) \| ([\d.]+) \|$", deployed.report, re.MULTILINE)
    assert [float(r[2]) for r in rows] == [round(float(str(p["seconds"])), 1) for p in phases]
    total = sum(float(str(p["seconds"])) for p in phases)
    assert abs(total - float(facts["startup_s"])) < 2.0


def test_story_table_and_verify_results_come_from_the_ledger(deployed: Deployed) -> None:
    run, _, _ = ledger_state(deployed.home)
    with open_ledger(deployed.home / "ledger.sqlite3") as ledger:
        bench = ledger.conn.execute(
            "SELECT result_json FROM bench_results WHERE run_id = ?", (run["id"],)
        ).fetchone()
        checks = ledger.conn.execute(
            "SELECT r.name, r.status FROM verify_results r JOIN verify_runs v "
            "ON v.id = r.verify_run_id WHERE v.run_id = ?",
            (run["id"],),
        ).fetchall()
    for row in json.loads(bench["result_json"])["rows"]:
        assert f"| {row['words']}-word story | {row['tokens']} | {row['seconds']:.3f} |" in (
            deployed.report
        )
    assert {c["name"] for c in checks} == {"models", "chat", "streaming", "tool-named"}
    for check in checks:
        assert f"| {check['name']} | {check['status']} |" in deployed.report


def curl_blocks(report: str) -> list[str]:
    blocks = re.findall(r"```bash\n(curl .*?)```", report, re.DOTALL)
    return [b for b in blocks if "chat/completions" in b]


def test_curl_examples_in_the_report_work(deployed: Deployed) -> None:
    chat, tools = curl_blocks(deployed.report)
    reply = json.loads(subprocess.run(["bash", "-c", chat], capture_output=True, text=True,
                                      check=True, timeout=60).stdout)  # fmt: skip
    assert reply["choices"][0]["message"]["content"]
    reply = json.loads(subprocess.run(["bash", "-c", tools], capture_output=True, text=True,
                                      check=True, timeout=60).stdout)  # fmt: skip
    call = reply["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "calculate"
    assert "expression" in json.loads(call["function"]["arguments"])


def test_logs_and_second_deploy_adopts(deployed: Deployed) -> None:
    logs = deployed.corral("logs", NAME)
    assert "Application startup complete." in logs.stdout
    again = deployed.corral("deploy", NAME, "--no-verify", timeout=120)
    assert again.returncode == 0, again.stderr
    assert "adopting it" in again.stderr
    with open_ledger(deployed.home / "ledger.sqlite3") as ledger:
        assert len(runs_of(ledger, NAME)) == 1
