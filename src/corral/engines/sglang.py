"""SGLang: the launch command and a parser for its startup log.

Launch: `python -m sglang.launch_server --model-path … --served-model-name … --host
127.0.0.1 --port … [--context-length N] [--tool-call-parser P]`.

Log lines are `[YYYY-MM-DD HH:MM:SS] message` (full dates, unlike vLLM). Startup lines
seen in the recorded logs (0.5.11 and 0.5.16, tests/unit/test_engine_parsers.py):
`Load weight begin/end. elapsed=… s` (twice with a speculative draft model),
`KV Cache is allocated. [dtype: …, ]#tokens: N, K size: … GB` (the `dtype:` field appeared
between 0.5.11 and 0.5.16; one line per pool with a sliding-window model),
`Capture cuda graph end. Time elapsed: … s` / `Capture … CUDA graph end. elapsed=… s`,
`max_total_num_tokens=N, …, context_len=M, available_gpu_mem=… GB`, uvicorn's
`Application startup complete.` and `The server is fired up and ready to roll!`.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

from corral.engines.base import EngineEvent, Fact, Failure, Phase
from corral.engines.vllm import ANSI, EXCEPTION_LINE, known_failures

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?: [^\]]*)?\] ?(.*)$")

PHASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("config", re.compile(r"server_args=")),
    ("load_weights", re.compile(r"Load weight begin")),
    (
        "kv_cache",
        re.compile(r"KV Cache is allocated|Memory pool end|Use sliding window memory pool"),
    ),
    ("warmup", re.compile(r"Capture .*cuda graph begin", re.IGNORECASE)),
    ("api_server", re.compile(r"max_total_num_tokens=")),
    ("ready", re.compile(r"The server is fired up and ready to roll!")),
)


class SglangLogParser:
    """Stateful SGLang parser (see the module docstring for the lines it knows)."""

    def __init__(self, *, tz: tzinfo | None = None) -> None:
        self.tz = tz
        self.last_at: float | None = None
        self._phase_index = -1
        self._weights_loaded = 0
        self._graph_s = 0.0

    def feed(self, line: str) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        for segment in ANSI.sub("", line).rstrip("\n").split("\r"):
            if segment.strip():
                events.extend(self._segment(segment.strip()))
        return events

    def _segment(self, segment: str) -> list[EngineEvent]:
        m = STAMP.match(segment)
        msg = segment
        if m:
            stamp = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.tz)
            self.last_at, msg = stamp.timestamp(), m[2]
        events: list[EngineEvent] = []
        for index, (name, marker) in enumerate(PHASES):
            if index > self._phase_index and marker.search(msg):
                self._phase_index = index
                events.append(Phase(name, self.last_at, segment))
                break
        events.extend(self._facts(msg, segment))
        failure = self._failure(msg) if not m or "Error" in msg else None
        if failure is not None:
            events.append(failure)
        return events

    def _facts(self, msg: str, line: str) -> list[EngineEvent]:
        found: list[EngineEvent] = []
        if v := re.search(r"SGLang Version (\S+)", msg):
            found.append(Fact("engine_version", v[1], "", line))
        if w := re.search(r"Load weight end\. elapsed=([\d.]+) s.*?mem usage=([\d.]+) GB", msg):
            self._weights_loaded += 1
            prefix = "" if self._weights_loaded == 1 else "drafter_"
            found.append(Fact(f"{prefix}weights_load_s", float(w[1]), "s", line))
            found.append(Fact(f"{prefix}model_load_gib", float(w[2]), "GB", line))
        if k := re.search(r"KV Cache is allocated\..*#tokens: (\d+)", msg):
            found.append(Fact("kv_cache_pool_tokens", int(k[1]), "tokens", line))
        if g := re.search(
            r"Capture .*graph end\. (?:Time elapsed: |elapsed=)([\d.]+) s", msg, re.I
        ):
            self._graph_s += float(g[1])
            found.append(Fact("graph_capture_s", round(self._graph_s, 2), "s", line))
        if t := re.search(r"max_total_num_tokens=(\d+).*?context_len=(\d+)", msg):
            found.append(Fact("kv_cache_tokens", int(t[1]), "tokens", line))
            found.append(Fact("max_model_len", int(t[2]), "tokens", line))
            if r := re.search(r"max_running_requests=(\d+)", msg):
                found.append(Fact("max_running_requests", int(r[1]), "", line))
            if a := re.search(r"available_gpu_mem=([\d.]+) GB", msg):
                found.append(Fact("available_gpu_mem_gb", float(a[1]), "GB", line))
        if u := re.search(r"Uvicorn running on (\S+)", msg):
            found.append(Fact("listen_url", u[1], "", line))
        return found

    def _failure(self, msg: str) -> Failure | None:
        for known in known_failures():
            if known.pattern.search(msg):
                return Failure(known.kind, msg, known.hint, msg)
        if EXCEPTION_LINE.match(msg):
            return Failure("error", msg, "", msg)
        return None


class SglangEngine:
    name = "sglang"

    def parser(self) -> SglangLogParser:
        return SglangLogParser()

    def metric_names(self) -> dict[str, str]:
        return {
            "running": "sglang:num_running_reqs",
            "waiting": "sglang:num_queue_reqs",
            "kv_cache_usage": "sglang:token_usage",
            "prompt_tokens": "sglang:prompt_tokens_total",
            "generation_tokens": "sglang:generation_tokens_total",
            "ttft": "sglang:time_to_first_token_seconds",
            "itl": "sglang:inter_token_latency_seconds",
            "e2e_latency": "sglang:e2e_request_latency_seconds",
        }
