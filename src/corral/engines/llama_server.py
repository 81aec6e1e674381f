"""llama.cpp's `llama-server`: the launch command and a parser for its startup log.

Launch: `llama-server -m MODEL.gguf --alias NAME --host 127.0.0.1 --port N [-c CTX]
--metrics --jinja`. `/health` answers 503 "Loading model" until ready (ENGINE-FACTS.md).

Log lines (builds b7896 and b9536 in the recorded logs): newer builds prefix every line with
the time since start, `M.SS.mmm.uuu L ` (minutes, seconds, ms, µs, level letter); older ones
have no stamp. A parser given `started_at` (the wall clock at launch) turns the offsets into
times. Facts: `build: N (hash)`, `llama_kv_cache: size = X MiB ( N cells, …`,
`n_parallel = N`, `new slot, n_ctx = N`, `CUDA0 model buffer size = X MiB`, `server is
listening on URL`.
"""

from __future__ import annotations

import re

from corral.engines.base import EngineEvent, Fact, Failure, Phase
from corral.engines.vllm import ANSI, known_failures

OFFSET = re.compile(r"^(\d+)\.(\d\d)\.(\d{3})\.(\d{3}) [IWEDT] (.*)$")

PHASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("config", re.compile(r"system_info:|^build: ")),
    ("load_weights", re.compile(r"loading model")),
    ("kv_cache", re.compile(r"llama_context: constructing|llama_kv_cache:|n_ctx_seq")),
    ("warmup", re.compile(r"warming up the model")),
    ("api_server", re.compile(r"initializing slots")),
    ("ready", re.compile(r"server is listening on")),
)

FACTS: tuple[tuple[re.Pattern[str], str, str, type], ...] = (
    (re.compile(r"^build: (\d+ \([0-9a-f]+\))"), "engine_version", "", str),
    (
        re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells"),
        "kv_cache_memory_mib",
        "MiB",
        float,
    ),
    (re.compile(r"using n_parallel = (\d+)"), "parallel_slots", "", int),
    (re.compile(r"new slot, n_ctx = (\d+)"), "max_model_len", "tokens", int),
    (re.compile(r"\w+ model buffer size = +([\d.]+) MiB"), "model_buffer_mib", "MiB", float),
    (re.compile(r"server is listening on (\S+)"), "listen_url", "", str),
)


class LlamaServerLogParser:
    """Stateful llama-server parser; `started_at` anchors the relative stamps."""

    def __init__(self, *, started_at: float | None = None) -> None:
        self.started_at = started_at
        self.last_at: float | None = None
        self._phase_index = -1

    def feed(self, line: str) -> list[EngineEvent]:
        text = ANSI.sub("", line).rstrip("\n").split("\r")[-1].strip()
        if not text:
            return []
        msg = self._stamp(text)
        events: list[EngineEvent] = []
        for index, (name, marker) in enumerate(PHASES):
            if index > self._phase_index and marker.search(msg):
                self._phase_index = index
                events.append(Phase(name, self.last_at, text))
                break
        events.extend(self._facts(msg, text))
        for known in known_failures():
            if known.pattern.search(msg):
                events.append(Failure(known.kind, msg, known.hint, text))
                break
        return events

    def _stamp(self, text: str) -> str:
        m = OFFSET.match(text)
        if not m:
            return text
        offset = int(m[1]) * 60 + int(m[2]) + int(m[3]) / 1e3 + int(m[4]) / 1e6
        self.last_at = offset if self.started_at is None else self.started_at + offset
        return m[5].strip()

    def _facts(self, msg: str, line: str) -> list[EngineEvent]:
        found: list[EngineEvent] = []
        for pattern, name, unit, kind in FACTS:
            m = pattern.search(msg)
            if m:
                found.append(Fact(name, kind(m[1]), unit, line))
                if name == "kv_cache_memory_mib":
                    found.append(Fact("kv_cache_tokens", int(m[2]), "tokens", line))
        return found


class LlamaServerEngine:
    name = "llama-server"

    def parser(self) -> LlamaServerLogParser:
        return LlamaServerLogParser()

    def metric_names(self) -> dict[str, str]:
        return {
            "running": "llamacpp:requests_processing",
            "waiting": "llamacpp:requests_deferred",
            "kv_cache_usage": "llamacpp:kv_cache_usage_ratio",
            "prompt_tokens": "llamacpp:prompt_tokens_total",
            "generation_tokens": "llamacpp:tokens_predicted_total",
        }
