"""The protocol every engine adapter implements, and the typed events its log parser yields.

An adapter knows two things about its engine: how to read its log (`parser`) and what its
metrics are called. The command that launches it is the recipe's (recipes/render.py, the
one command builder). It knows nothing of HTTP clients, processes or the gateway: a
runtime hands out the engine's output lines, and the control plane's recorder feeds them
to the parser and acts on the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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

    def parser(self) -> LogParser: ...

    def metric_names(self) -> dict[str, str]: ...
