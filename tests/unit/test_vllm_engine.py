"""The vLLM adapter: its launch command, and its log parser over every recorded vLLM log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from corral.engines import engine_for
from corral.engines.base import EngineEvent, Failure, Phase
from corral.engines.vllm import (
    VllmLogParser,
    clean_line,
    facts_of,
    parse_log,
    phases_of,
)
from corral.errors import ConfigError

VLLM_LOGS = (
    Path(__file__).resolve().parents[2]
    / "tests"
    / "fixtures"
    / "shared"
    / "fixtures"
    / "logs"
    / "vllm"
)
CPU_LOG = Path(__file__).resolve().parents[1] / "fixtures" / "logs" / "smollm2-cpu-vllm-0.32.0.log"


def events_of(path: Path, year: int = 2026) -> list[EngineEvent]:
    return parse_log(path.read_text(encoding="utf-8"), year=year, tz=UTC)


def at(year: int, month: int, day: int, hms: str) -> float:
    h, m, s = (int(x) for x in hms.split(":"))
    return datetime(year, month, day, h, m, s, tzinfo=UTC).timestamp()


def failures(events: list[EngineEvent]) -> list[Failure]:
    return [e for e in events if isinstance(e, Failure)]


def test_unknown_engine_names_the_known_ones() -> None:
    assert engine_for("vllm").name == "vllm"
    with pytest.raises(ConfigError, match="available: vllm, sglang, llama-server"):
        engine_for("tgi")


# ---- line cleaning ---------------------------------------------------------------------


def test_clean_line_strips_ansi_prefix_and_splits_progress_bars() -> None:
    raw = "\x1b[1;36m(EngineCore_DP0 pid=55630)\x1b[0;0m \rLoading: 0%\rLoading: 100%"
    assert clean_line(raw) == ["Loading: 0%", "Loading: 100%"]
    assert clean_line("(Worker pid=3045) INFO x") == ["INFO x"]
    assert clean_line("(VllmWorker-0 pid=3045) WARNING y") == ["WARNING y"]
    assert clean_line("(APIServer pid=1) \r\n") == []


# ---- recorded logs ---------------------------------------------------------------------


def test_vllm_0_14_gpt_oss_gb10_with_ansi_codes() -> None:
    events = events_of(VLLM_LOGS / "gpt-oss-120b-gb10-vllm-0.14.0rc1.log")
    facts = facts_of(events)
    assert facts["engine_version"] == "0.14.0rc1.dev375+g8409484b4"
    assert facts["weights_load_s"] == 57.15
    assert facts["model_load_gib"] == 61.338
    assert facts["model_load_s"] == 67.927823
    assert facts["torch_compile_s"] == 48.77  # "takes", the 0.14 wording
    assert facts["kv_cache_memory_gib"] == 18.74
    assert facts["kv_cache_tokens"] == 545_824  # "GPU KV cache size": its own line
    assert facts["max_concurrency"] == 7.83
    assert facts["max_concurrency_request_tokens"] == 131_072
    assert facts["max_model_len"] == 131_072
    assert facts["max_num_batched_tokens"] == 8192  # logged 2048 first, then 8192
    assert facts["graph_capture_s"] == 6
    assert facts["graph_capture_gib"] == 0.87
    assert facts["init_engine_s"] == 115.58
    assert facts["listen_url"] == "http://0.0.0.0:8000"  # "Starting vLLM API server 0 on"
    phases = phases_of(events)
    assert list(phases) == [
        "config", "engine_init", "load_weights", "compile", "kv_cache", "warmup", "api_server",
        "ready",
    ]  # fmt: skip
    assert phases["config"] == at(2026, 2, 9, "07:27:18")
    assert phases["load_weights"] == at(2026, 2, 9, "07:27:30")
    assert phases["warmup"] == at(2026, 2, 9, "07:29:31")  # flashinfer's own dated line
    assert phases["ready"] == at(2026, 2, 9, "07:30:38")  # uvicorn's line: the last stamp
    assert failures(events) == []


def test_vllm_0_20_gemma_gb10() -> None:
    events = events_of(VLLM_LOGS / "gemma-4-26b-a4b-bf16-gb10-vllm-0.20.0.log")
    facts = facts_of(events)
    assert facts["engine_version"] == "0.20.0"  # only in the banner and the engine line
    assert facts["weights_load_s"] == 371.35
    assert facts["model_load_gib"] == 48.5
    assert facts["torch_compile_s"] == 25.60  # "took", the newer wording
    assert facts["kv_cache_memory_gib"] == 40.61
    assert facts["kv_cache_tokens"] == 177_440
    assert facts["max_concurrency"] == 35.75
    assert facts["max_num_batched_tokens"] == 4096
    assert facts["init_engine_s"] == 65.48  # "took 65.48 s (compilation: 25.60 s)"
    assert facts["listen_url"] == "http://0.0.0.0:8000"  # "Starting vLLM server on"
    phases = phases_of(events)
    assert phases["compile"] == at(2026, 6, 7, "13:27:42")
    assert phases["ready"] == at(2026, 6, 7, "13:28:58")


def test_vllm_0_20_fail_max_num_batched_tokens_gives_a_hint() -> None:
    events = events_of(
        VLLM_LOGS / "gemma-4-26b-a4b-bf16-gb10-vllm-0.20.0-fail-max-num-batched-tokens-2048.log"
    )
    found = failures(events)
    assert [f.kind for f in found] == ["max_num_batched_tokens"]
    assert "max_tokens_per_mm_item (2496)" in found[0].message
    assert "--max-num-batched-tokens" in found[0].hint
    assert "ready" not in phases_of(events)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "gemma-4-26b-a4b-nvfp4-gb10-vllm-0.25.1.log",
            {"engine_version": "0.25.1", "weights_load_s": 99.72, "model_load_gib": 15.88,
             "torch_compile_s": 30.44, "kv_cache_memory_gib": 84.68,
             "kv_cache_tokens": 3_912_140, "max_concurrency": 14.92, "init_engine_s": 119.55,
             "max_num_batched_tokens": 2496, "max_model_len": 262_144, "graph_capture_s": 5},
        ),
        (
            "gpt-oss-120b-vllm-0.25.1-marlin.log",
            {"engine_version": "0.25.1", "weights_load_s": 5.36, "model_load_gib": 66.14,
             "model_load_s": 9.350972, "torch_compile_s": 2.25, "kv_cache_memory_gib": 16.83,
             "kv_cache_tokens": 460_775, "max_concurrency": 3.52, "graph_capture_s": 9,
             "graph_capture_gib": 0.79, "init_engine_s": 15.02, "max_num_batched_tokens": 8192},
        ),
    ],
)  # fmt: skip
def test_vllm_0_25_logs(name: str, expected: dict[str, float | str]) -> None:
    events = events_of(VLLM_LOGS / name)
    facts = facts_of(events)
    assert {k: facts[k] for k in expected} == expected
    assert "ready" in phases_of(events)
    assert failures(events) == []


def test_vllm_0_25_oom_killed_log_just_stops_after_compile() -> None:
    events = events_of(VLLM_LOGS / "laguna-s-2.1-nvfp4-gb10-vllm-0.25.1-oom-killed.log")
    facts = facts_of(events)
    assert facts["weights_load_s"] == 716.49
    assert facts["drafter_weights_load_s"] == 16.82  # the DFlash drafter, loaded second
    assert facts["model_load_gib"] == 95.63
    assert facts["torch_compile_s"] == 30.61
    assert "kv_cache_tokens" not in facts
    assert list(phases_of(events))[-1] == "compile"
    assert failures(events) == []  # the OOM killer leaves no line: the exit code tells


def test_vllm_0_32_cpu_smollm2() -> None:
    events = events_of(CPU_LOG)
    facts = facts_of(events)
    assert facts["engine_version"] == "0.32.0"
    assert facts["architecture"] == "LlamaForCausalLM"
    assert facts["weights_load_s"] == 1.17
    assert facts["kv_cache_memory_gib"] == 1.0
    # one line on CPU: "CPU KV cache size: N tokens, Maximum concurrency for M tokens ...: Xx"
    assert facts["kv_cache_tokens"] == 46_592
    assert facts["max_concurrency_request_tokens"] == 4096
    assert facts["max_concurrency"] == 11.38
    assert facts["init_engine_s"] == 2.64
    assert facts["listen_url"] == "http://127.0.0.1:18123"
    phases = phases_of(events)
    assert list(phases) == [
        "config",
        "engine_init",
        "load_weights",
        "kv_cache",
        "api_server",
        "ready",
    ]
    assert phases["load_weights"] == at(2026, 11, 26, "18:51:41")
    assert phases["ready"] == at(2026, 11, 26, "18:51:49")
    # the hermes parser's ERROR traceback after startup is not a startup failure
    assert failures(events) == []


def test_a_bad_model_path_is_a_known_failure() -> None:
    parser = VllmLogParser(year=2026, tz=UTC)
    line = (
        "huggingface_hub.errors.HFValidationError: Repo id must be in the form 'repo_name' "
        "or 'namespace/repo_name': '/nonexistent/model'."
    )
    assert [f.kind for f in failures(parser.feed(line))] == ["model_not_found"]
    assert failures(parser.feed("    raise HFValidationError(")) == []


def test_year_turns_when_the_month_goes_back() -> None:
    parser = VllmLogParser(year=2025, tz=UTC)
    parser.feed(
        "(APIServer pid=1) INFO 12-31 23:59:59 [api_server.py:1] vLLM API server version 0.1"
    )
    events = parser.feed(
        "(EngineCore pid=2) INFO 01-01 00:00:05 [core.py:1] Initializing a V1 LLM engine (v0.1)"
    )
    phase = next(e for e in events if isinstance(e, Phase))
    assert phase.at == at(2026, 1, 1, "00:00:05")


def test_an_unknown_architecture_is_a_known_failure() -> None:
    line = (
        "  Value error, The checkpoint you are trying to load has model type `x` but "
        "Transformers does not recognize this architecture."
    )
    (found,) = failures(VllmLogParser(year=2026).feed(line))
    assert found.kind == "unsupported_architecture"
