"""The protocol every engine adapter implements, and the typed events its log parser yields.

An adapter knows three things about its engine: how to launch it for a deployment
(`command`), how to read its log (`parser`), and what its metrics are called. It knows
nothing of HTTP clients, processes or the gateway: the runtime runs the command, feeds
every output line to the parser, and the controller acts on the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class LaunchSpec:
    """What a deployment asks of an engine, independent of how it is run."""

    model_path: Path
    served_name: str
    port: int
    host: str = "127.0.0.1"
    max_model_len: int | None = None
    tool_parser: str | None = None
    auto_tool_choice: bool = False
    enforce_eager: bool = False
    extra_args: tuple[str, ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()
    cpu_cores: int | None = None
    cpu_kv_cache_gib: float | None = None
    python: str | None = None
    device: str = "cpu"
    """`cpu` (vLLM's CPU build: CPU settings, eager mode) or `gpu`."""
    cache_dir: Path | None = None
    """Where the engine keeps its compile cache (vLLM: VLLM_CACHE_ROOT)."""


@dataclass(frozen=True)
class LaunchCommand:
    """An argv and the environment variables to add to the inherited environment."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)


@dataclass(frozen=True)
class Phase:
    """A startup phase began (or, for `ready`, startup ended) at `at` (engine wall clock, s)."""

    name: str
    at: float | None
    line: str


@dataclass(frozen=True)
class Fact:
    """A figure the engine reported: `kv_cache_tokens`, `weights_load_s`, `engine_version` ..."""

    name: str
    value: float | str
    unit: str = ""
    line: str = field(default="", compare=False)


@dataclass(frozen=True)
class Failure:
    """A known failure the engine logged (`kind` e.g. `oom`), with how to fix it (`hint`)."""

    kind: str
    message: str
    hint: str
    line: str = field(default="", compare=False)


EngineEvent = Phase | Fact | Failure


class LogParser(Protocol):
    """Stateful: fed one line at a time, in order; returns the events that line carries."""

    def feed(self, line: str) -> list[EngineEvent]: ...


class Engine(Protocol):
    """One engine (vLLM, SGLang, llama-server) behind one shape."""

    name: str

    def command(self, spec: LaunchSpec) -> LaunchCommand: ...

    def parser(self) -> LogParser: ...

    def metric_names(self) -> dict[str, str]: ...
