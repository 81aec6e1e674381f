"""The vLLM parser on real GPU output: vLLM 0.24.0 on one H200 (tests/fixtures/logs/vllm/,
each log with a source note), figures pinned to what the logs say, phases in order, and the
GPU failures known with their fixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.engines.base import Failure, Phase
from corral.engines.vllm import VllmLogParser, facts_of, parse_log

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "logs" / "vllm"
H200 = "smollm2-135m-bf16-h200-vllm-0.24.0"
STARTUP_ORDER = ["config", "engine_init", "load_weights", "compile", "kv_cache", "warmup",
                 "api_server", "ready"]  # fmt: skip


def events(name: str) -> list[object]:
    return list(parse_log((LOGS / f"{name}.log").read_text(), year=2026))


def test_h200_log_figures() -> None:
    facts = facts_of(events(H200))  # type: ignore[arg-type]
    assert facts["engine_version"] == "0.24.0"
    assert facts["torch_compile_s"] == 18.22
    assert facts["dynamo_transform_s"] == 5.84
    assert (facts["graph_capture_s"], facts["graph_capture_gib"]) == (4.0, 0.39)
    assert facts["kv_cache_memory_gib"] == 69.1
    assert facts["kv_cache_tokens"] == 3_220_176
    assert (facts["max_concurrency"], facts["max_concurrency_request_tokens"]) == (786.18, 4096)
    assert facts["init_engine_s"] == 37.98
    assert facts["max_num_batched_tokens"] == 8192


@pytest.mark.parametrize("name", [H200, f"{H200}-corral-gpu-recipe"])
def test_h200_startup_phases_in_order(name: str) -> None:
    phases = [e.name for e in events(name) if isinstance(e, Phase)]
    assert phases == STARTUP_ORDER


def test_corral_deployed_h200_run_compiled_and_captured_graphs() -> None:
    facts = facts_of(events(f"{H200}-corral-gpu-recipe"))  # type: ignore[arg-type]
    assert facts["torch_compile_s"] == 25.60
    assert (facts["graph_capture_s"], facts["graph_capture_gib"]) == (4.0, 0.39)
    assert facts["kv_cache_memory_gib"] == 69.1
    assert facts["init_engine_s"] == 53.94


def test_eager_cpu_recipe_on_the_h200_has_no_compile_phase() -> None:
    found = events(f"{H200}-enforce-eager-cpu-recipe")
    facts = facts_of(found)  # type: ignore[arg-type]
    assert "compile" not in [e.name for e in found if isinstance(e, Phase)]
    assert (facts["kv_cache_memory_gib"], facts["kv_cache_tokens"]) == (127.81, 5_956_560)
    assert facts["max_concurrency"] == 1454.24


def test_kv_cache_memory_bytes_log() -> None:
    facts = facts_of(events(f"{H200}-kv-cache-memory-bytes"))  # type: ignore[arg-type]
    assert (facts["kv_cache_tokens"], facts["max_concurrency"]) == (372_816, 91.02)
    assert facts["torch_compile_s"] == 24.04


def test_kv_too_small_is_a_known_failure_with_its_fix() -> None:
    failures = [e for e in events(f"{H200}-fail-kv-too-small") if isinstance(e, Failure)]
    kinds = [f.kind for f in failures]
    assert "kv_cache_too_small" in kinds
    first = next(f for f in failures if f.kind == "kv_cache_too_small")
    assert "max_model_len" in first.hint


def test_missing_flashinfer_is_a_known_failure_with_its_fix() -> None:
    # The engine core's last line when FlashInfer is absent and the sampler switch is on
    # (issue 19, seen on the H200 before VLLM_USE_FLASHINFER_SAMPLER=0).
    line = "(EngineCore pid=1462) ModuleNotFoundError: No module named 'flashinfer'"
    found = [e for e in VllmLogParser(year=2026).feed(line) if isinstance(e, Failure)]
    assert [f.kind for f in found] == ["flashinfer_missing"]
    assert "VLLM_USE_FLASHINFER_SAMPLER=0" in found[0].hint
