"""The SGLang adapter over its recorded startup logs (llama-server: test_llama_server.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from corral.engines.base import EngineEvent, Fact
from corral.engines.sglang import SglangEngine, SglangLogParser
from corral.engines.vllm import facts_of, phases_of

LOGS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "shared" / "fixtures" / "logs"


def feed_all(parser: SglangLogParser, path: Path) -> list[EngineEvent]:
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


def test_parsers_ignore_blank_lines() -> None:
    assert SglangEngine().parser() is not None
    assert all(not isinstance(e, Fact) for e in SglangLogParser().feed(""))
