"""The planner on the H200's real figures (vLLM 0.24.0, SmolLM2-135M at 4,096 tokens,
--gpu-memory-utilization 0.5; tests/fixtures/logs/vllm/smollm2-135m-bf16-h200-vllm-0.24.0.log):
exact given the logged KV memory, and a prediction from utilization x the profile's memory
minus weights and a measured non-KV overhead, whose error docs/plan.md states."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from corral.errors import KvCacheError
from corral.hardware.profiles import load_profile
from corral.planner.plan import PlanInputs, make_plan
from tests.unit.planner.test_models_and_cli import SMOLLM2

GIB = 2**30
LOGGED_TOKENS, LOGGED_CONCURRENCY, LOGGED_KV_GIB = 3_220_176, 786.18, 69.1
# Non-KV memory besides weights measured on the same H200 in another run: the eager start at
# vLLM's default utilization 0.92 logged 127.81 GiB of KV, so 0.92 x 140.4 - 0.25 - 127.81.
EAGER_OVERHEAD_GIB = 1.11


@pytest.fixture
def smol(tmp_path: Path) -> str:
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2))
    return str(tmp_path)


def h200_inputs(model: str, **changes: object) -> PlanInputs:
    base: dict[str, object] = {"model": model, "engine_version": "0.24.0",
                               "gpu_memory_utilization": 0.5, "max_model_len": 4096}  # fmt: skip
    return PlanInputs(**(base | changes))  # type: ignore[arg-type]


def test_logged_kv_memory_gives_the_logged_tokens_and_concurrency(smol: str) -> None:
    plan = make_plan(h200_inputs(smol, kv_cache_memory=str(LOGGED_KV_GIB)), load_profile("h200"))
    low, high = plan.tokens_range
    assert low <= LOGGED_TOKENS <= high
    assert plan.concurrency_range[0] <= LOGGED_CONCURRENCY <= plan.concurrency_range[1]
    assert plan.capacity.tokens == 3_220_288
    assert round(plan.capacity.max_concurrency, 2) == 786.2


def test_prediction_without_the_logged_kv_figure(smol: str) -> None:
    plan = make_plan(
        h200_inputs(smol, non_kv_overhead_gib=EAGER_OVERHEAD_GIB), load_profile("h200")
    )
    kv_gib = plan.kv_memory_bytes[1] / GIB
    error = (plan.capacity.tokens - LOGGED_TOKENS) / LOGGED_TOKENS
    assert round(kv_gib, 2) == 68.84  # logged 69.1: -0.26 GiB
    assert plan.capacity.tokens == 3_208_144
    assert -0.005 < error < 0  # -0.37 %, as docs/plan.md says


def test_the_profiles_large_model_estimate_is_conservative(smol: str) -> None:
    plan = make_plan(h200_inputs(smol), load_profile("h200"))  # non_kv_overhead_gib 3.5
    error = (plan.capacity.tokens - LOGGED_TOKENS) / LOGGED_TOKENS
    assert plan.capacity.tokens == 3_096_768
    assert -0.04 < error < -0.03  # -3.8 %: fewer tokens than the engine finds, never more


def test_utilization_that_leaves_no_kv_room_names_the_figures(smol: str) -> None:
    with pytest.raises(KvCacheError, match=r"exceed the budget 0\.02 x 140\.4 GiB") as info:
        make_plan(h200_inputs(smol, gpu_memory_utilization=0.02), load_profile("h200"))
    assert "no context fits" in (info.value.hint or "")


def test_kv_too_small_for_the_context_gives_the_largest_that_fits(smol: str) -> None:
    with pytest.raises(KvCacheError, match="largest max-model-len that fits is") as info:
        make_plan(h200_inputs(smol, max_model_len=8192, kv_cache_memory="1048576B"),
                  load_profile("h200"))  # fmt: skip
    assert "needs 0.18 GiB" in info.value.message  # the engine's own figure (fail log)


def test_corral_plan_takes_the_measured_overhead(smol: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "corral", "plan", smol, "--hardware", "h200",
         "--engine-version", "0.24.0", "--gpu-memory-utilization", "0.5",
         "--max-model-len", "4096", "--non-kv-overhead", str(EAGER_OVERHEAD_GIB), "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert "3208144" in done.stdout.replace(",", ""), result
    assert round(result["decode_ceiling_tok_s"]) == 17842
