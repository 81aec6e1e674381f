"""`corral tune` on the default model on the real vLLM CPU engine, through the CLI: a
tiny workload, a short budget, `current` and one measured candidate (max_num_seqs and
max_num_batched_tokens together, so one engine start covers both flags), two the planner
rules out, one the engine refuses, and `current` once more at the end (its drift); the
deployment restored afterwards. Four engine starts in all (the refused one ends in
seconds): the shortest run that shows each outcome.

Starts its own engines (the search restarts the deployment), so it holds `vllm_lock`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from corral.ledger.db import open_ledger
from corral.ledger.launches import runs_of
from tests.support.corral_cli import corral, default_config_file, kill_leftover
from tests.support.vllm import free_port

NAME = "smollm2-135m-instruct"

pytestmark = pytest.mark.integration

SPACE = {
    "axes": {"typo": {"flag": "--no-such-flag", "values": []}},
    "candidates": [
        {"name": "seqs4-batch512", "settings": {"max_num_seqs": 4, "max_num_batched_tokens": 512}},
        {"name": "too-small",
         "settings": {"enable_chunked_prefill": False, "max_num_batched_tokens": 512}},
        {"name": "bad-dtype", "settings": {"kv_cache_dtype": "no-such-dtype"}},
        {"name": "typo", "settings": {"typo": 1}},
    ],
}  # fmt: skip


def test_tune_default_model(vllm_lock: None, default_model_path: Path, tmp_path: Path) -> None:
    config = default_config_file(tmp_path, default_model_path, free_port())
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    saved = tmp_path / "tune.json"
    home = tmp_path / "home"
    try:
        done = corral(
            "tune", NAME, "--config", str(config), "--space", str(space), "--workload", "tiny",
            "--slo", "ttft_p95=10s", "--repeats", "1", "--max-time", "8m",
            "--save", str(saved), "--plots", str(tmp_path / "plots"), timeout=560,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        summary = json.loads(saved.read_text())
        by = {c["name"]: c for c in summary["candidates"]}
        assert by["too-small"]["status"] == "skipped"
        assert "must be at least max_model_len 4096" in by["too-small"]["reason"]
        assert by["bad-dtype"]["status"] == "skipped"
        assert "'no-such-dtype' is not one the planner knows" in by["bad-dtype"]["reason"]
        assert by["typo"]["status"] == "failed"  # the engine's own error line
        assert "unrecognized arguments: --no-such-flag" in by["typo"]["reason"]
        assert summary["verdict"]["drift"] is not None  # current, then current-again
        for name in ("current", "seqs4-batch512", "current-again"):
            assert by[name]["status"] == "measured", by[name]
            assert by[name]["goodput"] > 0
            assert by[name]["decode_tok_s"] > 1  # a real decode (4-30 tok/s seen here)
        args = by["seqs4-batch512"]["args"]  # both flags, in the space file's key order
        assert sorted(zip(args[::2], args[1::2], strict=True)) == [
            ("--max-num-batched-tokens", "512"), ("--max-num-seqs", "4")]  # fmt: skip
        assert summary["verdict"]["winner"] in by
        assert "winner:" in done.stdout
        assert (tmp_path / "plots" / "pareto.png").stat().st_size > 1000
        # restored: the deployment was not running before, so nothing runs now
        with open_ledger(home / "ledger.sqlite3") as ledger:
            assert all(r["ended_at"] is not None for r in runs_of(ledger, NAME))
        report = corral("report", NAME, "--config", str(config))
        assert "## Tuning" in report.stdout, report.stderr
    finally:
        kill_leftover(home, NAME)
