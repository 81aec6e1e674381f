"""`corral bench story` and `corral bench serve` against the real vLLM CPU engine (tiny)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from corral.cli import app
from tests.support.vllm import LiveEngine

pytestmark = pytest.mark.integration


def run_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_story_table_on_the_real_engine(vllm_engine: LiveEngine) -> None:
    result = run_json(
        "bench",
        "story",
        vllm_engine.base_url,
        "--model",
        vllm_engine.served_name,
        "--words",
        "200",
        "--max-tokens",
        "16",
        "--json",
    )
    (row,) = result["rows"]
    assert row["token_source"] == "usage"
    assert 1 <= row["tokens"] <= 16
    assert row["reasoning_tokens"] == 0
    assert row["seconds"] > row["ttft"] > 0
    assert row["decode_tok_s"] is None or row["decode_tok_s"] > row["seed_tok_s"]


def test_serve_sweep_on_the_real_engine(vllm_engine: LiveEngine) -> None:
    result = run_json(
        "bench",
        "serve",
        vllm_engine.base_url,
        "--concurrency",
        "1,2",
        "-n",
        "4",
        "--input-len",
        "32",
        "--output-len",
        "8",
        "--json",
        "--slo",
        "ttft=30s",
    )
    assert result["ignore_eos_sent"] is True
    assert result["target"]["model"] == vllm_engine.served_name  # found via /v1/models
    for level in result["levels"]:
        assert (level["ok"], level["failed"]) == (4, 0)
        assert level["output_tokens"] == 32  # ignore_eos: exactly 8 each, from usage
        assert level["token_sources"] == {"usage": 4}
        # prompts were fitted with vLLM's own /tokenize: 32 tokens, give or take one
        assert 4 * 31 <= level["prompt_tokens"] <= 4 * 33
        assert level["good_fraction"] == 1.0


def test_probes_on_the_real_engine(vllm_engine: LiveEngine) -> None:
    result = run_json("bench", "probes", vllm_engine.base_url, "--contexts", "64,256",
                      "--prefix-tokens", "256", "--trials", "2", "--json")  # fmt: skip
    prefill = result["prefill"]
    assert [r["context"] for r in prefill] == [64, 256]
    for row in prefill:
        assert row["errors"] == []
        assert row["context"] - 1 <= row["prompt_tokens"] <= row["context"] + 1
    cache = result["prefix_cache"]
    assert cache["ttft_with"] is not None
    assert cache["ttft_without"] is not None
    assert cache["prompt_tokens"] > 256
