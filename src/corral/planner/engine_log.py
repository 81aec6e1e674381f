"""The capacity figures a vLLM startup log states, to check a plan against.

Read with the engine's own parser (`corral.engines.vllm.VllmLogParser`), so the planner and
the startup watcher can never disagree about what a log says: it already copes with ANSI
colour codes, raw `\\r`, and both wordings (one line on the CPU build and 0.26+, "CPU KV
cache size: 46,592 tokens, Maximum concurrency for 4,096 tokens per request: 11.38x"; two
lines on GPUs before that).
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.engines.base import Fact
from corral.engines.vllm import VllmLogParser

REQUIRED = ("kv_cache_tokens", "max_concurrency_request_tokens", "max_concurrency")


@dataclass(frozen=True)
class LoggedCapacity:
    tokens: int
    max_model_len: int
    max_concurrency: float  # as printed, two decimals
    kv_memory_gib: str | None  # as printed ("37.3", "18.74"), rounded by the engine to 0.01
    version: str | None


def first_facts(log: str) -> dict[str, float | str]:
    """Each fact's first value in the log (a planner checks the first capacity report)."""
    parser = VllmLogParser(year=2000)  # the year only dates phases, which are not used here
    found: dict[str, float | str] = {}
    for line in log.split("\n"):
        for event in parser.feed(line):
            if isinstance(event, Fact):
                found.setdefault(event.name, event.value)
    return found


def logged_capacity(log: str) -> LoggedCapacity | None:
    """The first KV cache size / concurrency the log reports, or None if it has none."""
    facts = first_facts(log)
    if any(name not in facts for name in REQUIRED):
        return None
    memory = facts.get("kv_cache_memory_gib")
    version = facts.get("engine_version")
    return LoggedCapacity(
        int(facts["kv_cache_tokens"]),
        int(facts["max_concurrency_request_tokens"]),
        float(facts["max_concurrency"]),
        None if memory is None else repr(float(memory)),
        None if version is None else str(version),
    )
