"""`corral bench` end to end against the scripted engine (a real server process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.bench.results import load_from_ledger
from corral.ledger.db import open_ledger
from corral.paths import ledger_path
from tests.support.scripted import RunningEngine, scripted_engine

FAST = ("--ttft", "0.02", "--itl", "0.002")


def corral(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"CORRAL_HOME": str(home)} if home else {}
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def json_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.fixture(scope="module")
def engine() -> Iterator[RunningEngine]:
    with scripted_engine(*FAST, "--tokens", "8", "--reasoning-tokens", "3") as running:
        yield running


def test_serve_sweep_counts_tokens_from_usage(engine: RunningEngine, tmp_path: Path) -> None:
    saved = tmp_path / "a.json"
    result = json_of(
        corral(
            "bench",
            "serve",
            engine.base_url,
            "--model",
            "scripted",
            "--concurrency",
            "1,3",
            "-n",
            "6",
            "--input-len",
            "16",
            "--output-len",
            "5",
            "--slo",
            "ttft=10s,tpot=1s",
            "--json",
            "--save",
            str(saved),
            "--plots",
            str(tmp_path / "plots"),
        )
    )
    assert [lv["label"] for lv in result["levels"]] == ["c=1", "c=3"]
    for lv in result["levels"]:
        assert (lv["requests"], lv["ok"], lv["failed"]) == (6, 6, 0)
        assert lv["warmup"] == lv["level"]
        assert lv["output_tokens"] == 30  # ignore_eos honoured: 5 tokens each
        assert lv["token_sources"] == {"usage": 6}
        assert lv["good_fraction"] == 1.0
        assert lv["early_stops"] == 0
    assert result["ignore_eos_sent"] is True
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "throughput.png",
        "tpot.png",
        "ttft.png",
    ]
    assert json.loads(saved.read_text())["levels"] == result["levels"]
    same = json_of(corral("bench", "compare", str(saved), str(saved), "--json"))
    assert same["regressions"] == 0
    assert len(same["rows"]) > 0


def test_story_counts_reasoning_apart(engine: RunningEngine) -> None:
    result = json_of(
        corral(
            "bench", "story", engine.base_url, "--words", "20,40", "--max-tokens", "30", "--json"
        )
    )
    rows = result["rows"]
    assert [r["words"] for r in rows] == [20, 40]
    for row in rows:
        assert row["tokens"] == 11  # 8 visible + 3 reasoning, from usage
        assert row["reasoning_tokens"] == 3
        assert row["visible_tokens"] == 8
        assert row["token_source"] == "usage"
        assert row["ttfvt"] > row["ttft"]


def test_story_markdown_table(engine: RunningEngine) -> None:
    done = corral("bench", "story", engine.base_url, "--words", "10", "-q")
    assert done.returncode == 0, done.stderr
    assert "| Test Scenario | Tokens Generated |" in done.stdout
    assert "| 10-word story | 11 | 3 |" in done.stdout


def test_missing_usage_is_counted_and_reported() -> None:
    with scripted_engine(*FAST, "--tokens", "4", "--quirk", "no-usage") as eng:
        result = json_of(
            corral(
                "bench",
                "serve",
                eng.base_url,
                "--concurrency",
                "2",
                "-n",
                "4",
                "--input-len",
                "8",
                "--output-len",
                "4",
                "--json",
            )
        )
    lv = result["levels"][0]
    assert lv["token_sources"] == {"chunks": 4}
    assert lv["output_tokens"] == 16
    assert any("carried no usage" in n for n in lv["notes"])
    assert any("no usage" in n for n in result["notes"])


def test_without_ignore_eos_short_replies_are_flagged(engine: RunningEngine) -> None:
    result = json_of(
        corral(
            "bench",
            "serve",
            engine.base_url,
            "--concurrency",
            "1",
            "-n",
            "2",
            "--output-len",
            "20",
            "--no-ignore-eos",
            "--input-len",
            "8",
            "--json",
        )
    )
    lv = result["levels"][0]
    assert lv["early_stops"] == 2
    assert any("stopped before max_tokens" in n for n in lv["notes"])


def test_probes_report_prefill_and_prefix_cache(engine: RunningEngine) -> None:
    result = json_of(
        corral(
            "bench",
            "probes",
            engine.base_url,
            "--contexts",
            "16,64",
            "--prefix-tokens",
            "64",
            "--trials",
            "2",
            "--json",
        )
    )
    assert [r["context"] for r in result["prefill"]] == [16, 64]
    assert all(r["ttft"] is not None and not r["errors"] for r in result["prefill"])
    pc = result["prefix_cache"]
    assert pc["ttft_with"] is not None
    assert pc["ttft_without"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("serve", "http://127.0.0.1:9", "--slo", "ttft=fast"), "invalid SLO item"),
        (("serve", "http://127.0.0.1:9", "--concurrency", "1,x"), "comma-separated numbers"),
        (("serve", "no-such-deployment"), "no deployment named 'no-such-deployment'"),
        (("compare", "missing-a.json", "missing-b.json"), "no such result file"),
    ],
)
def test_bad_input_is_a_message_not_a_traceback(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    done = corral("bench", *args, home=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_server_is_a_message(tmp_path: Path) -> None:
    done = corral("bench", "serve", "http://127.0.0.1:9", "--model", "x", "-q", home=tmp_path)
    assert done.returncode == 1
    assert "probe request" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_deployment_name_resolves_via_the_ledger_and_the_result_is_stored(
    tmp_path: Path,
) -> None:
    name = "smollm2-135m-instruct"  # the default config's deployment
    with scripted_engine(*FAST, "--tokens", "4", model=name) as eng:
        with open_ledger(ledger_path(tmp_path)) as ledger, ledger.transaction() as conn:
            dep = conn.execute("INSERT INTO deployments (name, created_at) VALUES (?, 0)", (name,))
            conn.execute(
                "INSERT INTO runs (deployment_id, started_at, state, runtime, engine, command,"
                " base_url, config_json) VALUES (?, 1, 'ready', 'process', 'vllm', 'x', ?, '{}')",
                (dep.lastrowid, eng.base_url),
            )
        result = json_of(
            corral(
                "bench",
                "serve",
                name,
                "--concurrency",
                "1",
                "-n",
                "2",
                "--input-len",
                "8",
                "--output-len",
                "4",
                "--json",
                home=tmp_path,
            )
        )
    assert result["target"] == {
        "base_url": eng.base_url,
        "model": name,
        "deployment": name,
        "api": "completions",
    }
    bench_id = result["ledger_id"]
    with open_ledger(ledger_path(tmp_path)) as ledger:
        assert load_from_ledger(ledger, bench_id)["levels"] == result["levels"]
    diff = json_of(
        corral("bench", "compare", str(bench_id), str(bench_id), "--json", home=tmp_path)
    )
    assert diff["regressions"] == 0
