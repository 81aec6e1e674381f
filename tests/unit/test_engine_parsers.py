"""SGLang and llama-server adapters over their recorded startup logs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from corral.engines.base import EngineEvent, Fact, Phase
from corral.engines.llama_server import LlamaServerEngine, LlamaServerLogParser
from corral.engines.sglang import SglangEngine, SglangLogParser
from corral.engines.vllm import facts_of, phases_of

LOGS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "shared" / "fixtures" / "logs"


def feed_all(parser: SglangLogParser | LlamaServerLogParser, path: Path) -> list[EngineEvent]:
    events: list[EngineEvent] = []
    for line in path.read_text(encoding="utf-8", errors="replace").split("\n"):
        events.extend(parser.feed(line))
    return events


def test_sglang_0_5_11_qwen() -> None:
    events = feed_all(
        SglangLogParser(tz=UTC), LOGS / "sglang" / "qwen2.5-1.5b-instruct-gb10-sglang-0.5.11.log"
    )
    facts = facts_of(events)
    assert facts["engine_version"] == "0.5.11+05fb6a52"
    assert facts["weights_load_s"] == 33.49
    assert facts["kv_cache_tokens"] == 6827
    assert facts["max_model_len"] == 32768
    assert facts["graph_capture_s"] == 31.18  # 13.63 s + 17.55 s (piecewise)
    phases = phases_of(events)
    assert list(phases) == ["config", "load_weights", "kv_cache", "warmup", "api_server", "ready"]
    assert phases["ready"] == datetime(2026, 6, 7, 11, 58, 23, tzinfo=UTC).timestamp()


def test_sglang_0_5_16_with_dtype_field_and_a_draft_model() -> None:
    events = feed_all(
        SglangLogParser(tz=UTC), LOGS / "sglang" / "laguna-s-2.1-int4-gb10-sglang-0.5.16.log"
    )
    facts = facts_of(events)
    assert facts["weights_load_s"] == 109.33
    assert facts["drafter_weights_load_s"] == 12.25
    assert facts["kv_cache_pool_tokens"] == 185_897  # "KV Cache is allocated. dtype: ..., #tokens:"
    assert facts["kv_cache_tokens"] == 185_897
    assert facts["max_running_requests"] == 48
    assert facts["max_model_len"] == 65536


def test_llama_server_b7896_without_stamps() -> None:
    path = LOGS / "llama-server" / "qwen2.5-14b-instruct-q4_k_m-rtx3090-llama-server-b7896.log"
    events = feed_all(LlamaServerLogParser(), path)
    facts = facts_of(events)
    assert facts["engine_version"] == "7896 (ec6c7421e)"
    assert facts["kv_cache_tokens"] == 32768
    assert facts["kv_cache_memory_mib"] == 6144.0
    assert facts["parallel_slots"] == 4
    assert facts["listen_url"] == "http://0.0.0.0:8000"
    assert list(phases_of(events))[-1] == "ready"


def test_llama_server_b9536_relative_stamps() -> None:
    path = LOGS / "llama-server" / "gemma-4-26b-q4_0-gb10-llama-server-b9536.log"
    events = feed_all(LlamaServerLogParser(started_at=1000.0), path)
    phases = phases_of(events)
    assert phases["load_weights"] == 1000.30381
    assert phases["ready"] == 1002.254428
    assert facts_of(events)["max_model_len"] == 8192


def test_parsers_ignore_blank_lines() -> None:
    assert SglangEngine().parser() is not None
    assert LlamaServerEngine().parser() is not None
    assert all(not isinstance(e, Fact) for e in SglangLogParser().feed(""))
    assert not [e for e in LlamaServerLogParser().feed("\r\n") if isinstance(e, Phase)]
