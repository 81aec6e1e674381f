"""`corral tune` on the default model on the real llama-server (CPU build), through the
CLI: a tiny workload, `current` and one measured candidate (two flags at once), one the
planner rules out (a KV pool smaller than the workload's longest request), one the engine
refuses (its own error line recorded), `current` again at the end; the deployment
restored afterwards and the report's "Tuning" section written. Its own deployment and
home: the session's llama-server (`llama_deployed`) is left alone. llama-server starts in
about a second, so this is short.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from corral.ledger.db import open_ledger
from corral.ledger.launches import runs_of
from tests.integration.conftest import LLAMA_NAME, end_leftovers, llama_config, run_corral
from tests.support.vllm import free_port

pytestmark = [pytest.mark.integration, pytest.mark.llama]

SPACE = {
    "axes": {"typo": {"flag": "--no-such-flag", "values": []}},
    "candidates": [
        {"name": "parallel2-batch256", "settings": {"parallel": 2, "batch_size": 256}},
        {"name": "pool-too-small", "settings": {"ctx_size": 32}},
        {"name": "typo", "settings": {"typo": 1}},
    ],
}


def test_tune_llama_server(llama_binary: Path, tmp_path: Path) -> None:
    config = llama_config(tmp_path, free_port())
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    saved = tmp_path / "tune.json"
    home = tmp_path / "home"
    try:
        done = run_corral(
            "tune", LLAMA_NAME, "--config", str(config), "--space", str(space),
            "--workload", "tiny", "--slo", "ttft_p95=20s", "--repeats", "1",
            "--max-time", "5m", "--save", str(saved), timeout=400,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        by = {c["name"]: c for c in json.loads(saved.read_text())["candidates"]}
        assert by["pool-too-small"]["status"] == "skipped"
        assert "32" in by["pool-too-small"]["reason"], by["pool-too-small"]
        assert by["typo"]["status"] == "failed"
        assert "--no-such-flag" in by["typo"]["reason"], by["typo"]
        for name in ("current", "parallel2-batch256", "current-again"):
            assert by[name]["status"] == "measured", by[name]
            assert by[name]["goodput"] > 0
            assert by[name]["decode_tok_s"] > 1
        args = by["parallel2-batch256"]["args"]
        assert sorted(zip(args[::2], args[1::2], strict=True)) == [
            ("--batch-size", "256"), ("--parallel", "2")]  # fmt: skip
        assert "winner:" in done.stdout
        with open_ledger(home / "ledger.sqlite3") as ledger:  # restored: it was not running
            assert all(r["ended_at"] is not None for r in runs_of(ledger, LLAMA_NAME))
        report = run_corral("report", LLAMA_NAME, "--config", str(config))
        assert "## Tuning" in report.stdout, report.stderr
    finally:
        end_leftovers(home, LLAMA_NAME)
