"""The capacity figures a vLLM startup log states, to check a plan against.

Handles both wordings: one line on 0.26+ ("CPU KV cache size: 46,592 tokens, Maximum
concurrency for 4,096 tokens per request: 11.38x") and two lines before ("GPU KV cache
size: N tokens" then "Maximum concurrency for ..."), ANSI colour codes, and \\r.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TOKENS = re.compile(r"(?:GPU|CPU|XPU|TPU)(?: \+ host)? KV cache size: ([\d,]+) tokens")
CONCURRENCY = re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")
AVAILABLE = re.compile(r"Available KV cache memory: ([\d.]+) GiB")
EXPLICIT = re.compile(r"Explicitly set \(([\d.]+)/[\d.]+\) GiB for KV cache")
VERSION = re.compile(r"version (\d+\.\d+\.\d+\S*)")


@dataclass(frozen=True)
class LoggedCapacity:
    tokens: int
    max_model_len: int
    max_concurrency: float  # as printed, two decimals
    kv_memory_gib: str | None  # as printed ("37.3", "18.740000"), rounded by the engine
    version: str | None


def _num(text: str) -> int:
    return int(text.replace(",", ""))


def logged_capacity(log: str) -> LoggedCapacity | None:
    """The first KV cache size / concurrency the log reports, or None if it has none."""
    text = ANSI.sub("", log).replace("\r", "\n")
    tokens, conc = TOKENS.search(text), CONCURRENCY.search(text)
    if not tokens or not conc:
        return None
    memory = AVAILABLE.search(text) or EXPLICIT.search(text)
    version = VERSION.search(text)
    return LoggedCapacity(
        _num(tokens[1]),
        _num(conc[1]),
        float(conc[2]),
        memory[1] if memory else None,
        version[1] if version else None,
    )
