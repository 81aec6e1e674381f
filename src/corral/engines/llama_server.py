"""llama.cpp's `llama-server`: finding the binary, the launch command, and its startup log.

Launch: `llama-server -m MODEL.gguf --alias NAME --host 127.0.0.1 --port N -c CTX -np SLOTS
--metrics --jinja -lv 4`. `/health` answers 503 `{"error": {"message": "Loading model"}}`
until the model is loaded and the slots exist, then 200 (tools/server/server.cpp); corral's
readiness keeps polling through the 503s. `-lv 4` matters on current builds: llama.cpp's
own INFO lines (model size, offloaded layers, KV cache, device list) are printed only at
verbosity 4 ("trace") since the log rework; at the default 3 the log says little more than
the slot count and the listening address (docs/llama-server.md).

Log formats seen in real captures (tests/fixtures/llama-server/):
- classic (build b7896): no stamp, `main: ...`, `build: N (hash) with ...`,
  `ggml_cuda_init: found N CUDA devices:` / `Device 0: NAME, compute capability X.Y`;
- stamped (b9536, and the 0.5.0-dev vendored in llama-cpp-python 0.3.36): each line starts
  `M.SS.mmm.uuu L ` (minutes, seconds, ms, µs since start, level letter), devices as
  `- CUDA0 : NAME (TOTAL MiB, FREE MiB free)`; 0.5.0-dev says `llama_server: listening on`
  where b9536 said `server is listening on`, and `initializing, n_slots = N, n_ctx_slot = C`
  where older builds logged `new slot, n_ctx = C` per slot.
A parser given `started_at` (the wall clock at launch) turns the offsets into times.
Failure lines and their hints are data: `known_failures/llama-server.yaml`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from corral.engines.base import EngineEvent, Fact, Failure, Phase
from corral.engines.vllm import ANSI, KnownFailure, failures_from
from corral.errors import EngineError

OFFSET = re.compile(r"^(\d+)\.(\d\d)\.(\d{3})\.(\d{3}) [IWEDT] (.*)$")
BINARY_ENV = "CORRAL_LLAMA_SERVER"
CACHE_ENV = "CORRAL_LLAMA_SERVER_CACHE"
BUILD_COMMAND = "scripts/build_llama_server.sh"

PHASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("config", re.compile(r"system_info:|^build: |llama_server: initializing|device_info:")),
    ("load_weights", re.compile(r"loading model")),
    ("kv_cache", re.compile(r"llama_context: constructing|llama_kv_cache:|n_ctx_seq")),
    ("warmup", re.compile(r"warming up the model")),
    ("api_server", re.compile(r"initializing slots|load_model: initializing, n_slots")),
    ("ready", re.compile(r"(?:server is |llama_server: )listening on")),
)
NUM = r"([\d.]+)"
# `- CUDA0 : NVIDIA GB10 (122501 MiB, 118047 MiB free)`, alone (b9536) or after
# `common_param:` (0.5.0-dev); the CPU's own line (`- CPU : ...`) has no digit and is skipped.
DEVICE_LINE = re.compile(r"(?:^|: +)- (\w+\d|Metal) *: (.+?) \((\d+) MiB, (\d+) MiB free\)")


@dataclass(frozen=True)
class FactRule:
    pattern: re.Pattern[str]
    facts: Callable[[re.Match[str]], list[Fact]]


def _one(
    name: str, unit: str = "", conv: Callable[[str], float | str] = str
) -> Callable[[re.Match[str]], list[Fact]]:
    return lambda m: [Fact(name, conv(m[1]), unit)]


def _kv(m: re.Match[str]) -> list[Fact]:
    return [
        Fact("kv_cache_memory_mib", float(m[1]), "MiB"),
        Fact("kv_cache_tokens", int(m[2]), "tokens"),
    ]


def _offload(m: re.Match[str]) -> list[Fact]:
    return [Fact("gpu_layers", int(m[1]), "layers"), Fact("model_layers", int(m[2]), "layers")]


def _slots(m: re.Match[str]) -> list[Fact]:
    found = [Fact("parallel_slots", int(m[1]), "slots")]
    if m[2]:
        found.append(Fact("max_model_len", int(m[2]), "tokens"))
    return found


def _device(m: re.Match[str]) -> list[Fact]:
    return [
        Fact("device", f"{m[1]}: {m[2].strip()}"),
        Fact("device_memory_mib", float(m[3]), "MiB"),
        Fact("device_free_mib", float(m[4]), "MiB"),
    ]


def _cuda_init(m: re.Match[str]) -> list[Fact]:
    """Classic logs: `Device 0: NAME, compute capability X.Y, VMM: yes`."""
    return [Fact("device", f"CUDA{m[1]}: {m[2]}"), Fact("compute_capability", m[3])]


def _using_device(m: re.Match[str]) -> list[Fact]:
    return [Fact("device", f"{m[1]}: {m[2]}"), Fact("device_free_mib", float(m[3]), "MiB")]


def _buffer(m: re.Match[str]) -> list[Fact]:
    return [Fact(f"model_buffer_mib.{m[1]}", float(m[2]), "MiB")]


FACTS: tuple[FactRule, ...] = (
    FactRule(re.compile(r"^build: (\d+ \([0-9a-f]+\))"), _one("engine_version")),
    FactRule(re.compile(r"\bbuild (\d+ \([0-9a-f]+\)) with"), _one("engine_version")),
    FactRule(re.compile(r"^version: (\S+)"), _one("engine_version")),
    FactRule(re.compile(r"Device (\d+): ([^,]+), compute capability ([\d.]+)"), _cuda_init),
    FactRule(DEVICE_LINE, _device),
    FactRule(re.compile(r"using device (\w+) \(([^)]*)\).* - (\d+) MiB free"), _using_device),
    FactRule(re.compile(r"print_info: file size += " + NUM + r" (GiB|MiB)"),
             lambda m: [Fact(f"model_size_{m[2].lower()}", float(m[1]), m[2])]),
    FactRule(re.compile(r"print_info: file type += (.+)$"), _one("model_file_type")),
    FactRule(re.compile(r"print_info: model params += " + NUM + r" ([KMB])"),
             lambda m: [Fact("model_params", f"{m[1]} {m[2]}")]),
    FactRule(re.compile(r"print_info: n_ctx_train += (\d+)"), _one("n_ctx_train", "tokens", int)),
    FactRule(re.compile(r"offloaded (\d+)/(\d+) layers to GPU"), _offload),
    FactRule(re.compile(r"(\w+) model buffer size = +" + NUM + " MiB"), _buffer),
    FactRule(re.compile(r"llama_kv_cache: size = +" + NUM + r" MiB \( *(\d+) cells"), _kv),
    FactRule(re.compile(r"llama_context: n_ctx += (\d+)"), _one("context_tokens", "tokens", int)),
    FactRule(re.compile(r"using n_parallel = (\d+)()"), _slots),
    FactRule(re.compile(r"initializing slots, n_slots = (\d+)()"), _slots),
    FactRule(re.compile(r"initializing, n_slots = (\d+), n_ctx_slot = (\d+)"), _slots),
    FactRule(re.compile(r"new slot, n_ctx = (\d+)"), _one("max_model_len", "tokens", int)),
    FactRule(re.compile(r"(?:server is |llama_server: )listening on (\S+)"), _one("listen_url")),
)  # fmt: skip


def known_failures() -> tuple[KnownFailure, ...]:
    """The patterns in `known_failures/llama-server.yaml`; first match wins."""
    return failures_from("llama-server.yaml")


def failure_in(msg: str, line: str = "") -> Failure | None:
    """The known failure a log message shows, if any."""
    for known in known_failures():
        if known.pattern.search(msg):
            return Failure(known.kind, msg, known.hint, line or msg)
    return None


class LlamaServerLogParser:
    """Stateful llama-server parser; `started_at` anchors the relative stamps."""

    def __init__(self, *, started_at: float | None = None) -> None:
        self.started_at = started_at
        self.last_at: float | None = None
        self._phase_index = -1
        self._seen: dict[str, float | str] = {}

    def feed(self, line: str) -> list[EngineEvent]:
        text = ANSI.sub("", line).rstrip("\n").split("\r")[-1].strip()
        if not text:
            return []
        msg = self._stamp(text)
        events: list[EngineEvent] = []
        phase = self._phase(msg, text)
        if phase is not None:
            events.append(phase)
        events.extend(self._facts(msg, text))
        failure = failure_in(msg, text)
        if failure is not None:
            events.append(failure)
        return events

    def _stamp(self, text: str) -> str:
        m = OFFSET.match(text)
        if not m:
            return text
        offset = int(m[1]) * 60 + int(m[2]) + int(m[3]) / 1e3 + int(m[4]) / 1e6
        self.last_at = offset if self.started_at is None else self.started_at + offset
        return m[5].strip()

    def _phase(self, msg: str, line: str) -> Phase | None:
        for index, (name, marker) in enumerate(PHASES):
            if index > self._phase_index and marker.search(msg):
                self._phase_index = index
                return Phase(name, self.last_at, line)
        return None

    def _facts(self, msg: str, line: str) -> list[EngineEvent]:
        """Facts the line carries; one reported again with the same value is not repeated
        (each slot logs its context, four slots → one fact)."""
        found: list[EngineEvent] = []
        for rule in FACTS:
            m = rule.pattern.search(msg)
            if not m:
                continue
            for fact in rule.facts(m):
                if self._seen.get(fact.name) != fact.value:
                    self._seen[fact.name] = fact.value
                    found.append(Fact(fact.name, fact.value, fact.unit, line))
        return found


def parse_log(text: str) -> list[EngineEvent]:
    """Every event of a whole log (tests, and re-reading a finished run)."""
    parser = LlamaServerLogParser()
    return [event for line in text.splitlines() for event in parser.feed(line)]


# ---- the binary -------------------------------------------------------------------------


def build_cache(env: Mapping[str, str]) -> Path:
    """Where scripts/build_llama_server.sh keeps its builds."""
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")) / ".cache")
    return Path(base).expanduser() / "corral" / "llama-server"


def find_binary(
    env: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which
) -> Path:
    """The llama-server to run: $CORRAL_LLAMA_SERVER, else one on PATH, else the newest
    build in the build cache. EngineError saying how to get one when there is none."""
    env = os.environ if env is None else env
    if env.get(BINARY_ENV):
        named = Path(env[BINARY_ENV]).expanduser()
        if named.is_file() and os.access(named, os.X_OK):
            return named
        raise EngineError(
            f"{BINARY_ENV}={named} is not an executable file", hint=how_to_get_binary()
        )
    on_path = which("llama-server")
    if on_path:
        return Path(on_path)
    built = sorted(build_cache(env).glob("*/bin/llama-server"), key=lambda p: p.stat().st_mtime)
    if built:
        return built[-1]
    raise EngineError(
        "no llama-server binary: none is on PATH, "
        f"{BINARY_ENV} is not set, and {build_cache(env)} holds no build",
        hint=how_to_get_binary(),
    )


def how_to_get_binary() -> str:
    return (
        f"build it (CPU, ~10 min on 2 cores; needs cmake and a C++ compiler) with "
        f"`{BUILD_COMMAND}` from a corral checkout (`make llama-server`), install a package "
        "that ships it (Homebrew `llama.cpp`, or a release from "
        "github.com/ggml-org/llama.cpp/releases), "
        "or run the image ghcr.io/ggml-org/llama.cpp:server (CUDA: :server-cuda); then put it "
        f"on PATH or set {BINARY_ENV}=/path/to/llama-server"
    )


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
