"""llama-server's adapter on the log of the H200 run corral itself started (CUDA build from
the llama-cpp-python 0.3.36 sdist, recipe smollm2-135m-llama-server-h200; see the source note
in tests/fixtures/logs/llama-server/)."""

from __future__ import annotations

from pathlib import Path

from corral.engines.base import Failure
from corral.engines.llama_server import parse_log
from corral.engines.vllm import facts_of, phases_of

LOG = (Path(__file__).resolve().parents[1] / "fixtures" / "logs" / "llama-server"
       / "smollm2-135m-q4_1-h200-cuda-llama-server-corral.log")  # fmt: skip


def test_every_layer_on_the_h200_and_one_64_slot_pool() -> None:
    events = parse_log(LOG.read_text(encoding="utf-8"))
    facts = facts_of(events)
    assert facts["device"] == "CUDA0: NVIDIA H200"
    assert facts["device_free_mib"] == 142629.0
    assert (facts["gpu_layers"], facts["model_layers"]) == (31, 31)
    assert facts["model_buffer_mib.CUDA0"] == 92.17
    assert (facts["kv_cache_memory_mib"], facts["kv_cache_tokens"]) == (11520.0, 524288)
    assert (facts["parallel_slots"], facts["max_model_len"]) == (64, 8192)
    assert facts["model_size_mib"] == 92.1
    assert not [e for e in events if isinstance(e, Failure)]


def test_startup_phases_in_order_within_a_second() -> None:
    phases = phases_of(parse_log(LOG.read_text(encoding="utf-8")))
    assert list(phases) == ["config", "load_weights", "kv_cache", "warmup", "api_server", "ready"]
    stamps = [t for t in phases.values() if t is not None]
    assert stamps == sorted(stamps)
    assert stamps[-1] < 1.0  # ready 0.80 s into the log (1.2 s after launch, corral measured)
