"""The planner beside the engine: planned figures for the default deployment on CPU."""

from __future__ import annotations

from pathlib import Path

from corral.config import load_config
from corral.deploy.planning import plan_figures
from corral.recipes.prepare import prepare
from tests.unit.test_render import cpu_box


def test_planned_kv_capacity_for_the_default_on_cpu(default_model_path: Path) -> None:
    config = load_config(None)
    home = default_model_path.parents[3]
    prepared = prepare(config, "smollm2-135m-instruct", home, cpu_box)
    planned = plan_figures(prepared, {"engine_version": "0.32.0"})
    # VLLM_CPU_KVCACHE_SPACE=1 holds 46,592 tokens of SmolLM2-135M (ENGINE-FACTS.md).
    assert planned["kv_cache_tokens"] == (46592.0, "tokens")
    assert planned["max_num_batched_tokens"][1] == "tokens"
    assert 0.2 < planned["model_load_gib"][0] < 0.3


def test_no_plan_when_the_model_is_not_visible(tmp_path: Path) -> None:
    from tests.unit.test_render import PEGASUS

    prepared = prepare(load_config(PEGASUS), "gpt-oss-120b", tmp_path, cpu_box)
    planned = plan_figures(prepared, {})
    assert list(planned) == ["note"]
