"""A deterministic needle-in-a-haystack prompt of a given length in tokens (no datasets).

The haystack is numbered filler sentences; the needle is a pass key sentence in the
style of passkey retrieval (Mohtashami & Jaggi, 2023, "Landmark Attention"), placed at
half depth. The pass key is derived from the model name and the length, so a run is
repeatable and a cached answer from another length can't pass. The server's own
/tokenize sizes the prompt when it has one; otherwise a conservative estimate is used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

FILLER = (
    "The grass is green.",
    "The sky is blue.",
    "The sun is yellow.",
    "Here we go.",
    "There and back again.",
)
QUESTION = "What is the pass key? Answer with the number only."
# Characters per token when the server can't count (English filler runs ~4; assume fewer so
# an estimated prompt stays inside the context).
CHARS_PER_TOKEN_ESTIMATE = 3.0

Counter = Callable[[list[dict[str, Any]]], Awaitable[int | None]]


@dataclass(frozen=True)
class Haystack:
    messages: list[dict[str, Any]]
    pass_key: str
    tokens: int
    measured: bool  # True when the server's /tokenize counted it


def pass_key_for(model: str, tokens: int) -> str:
    digest = hashlib.sha256(f"{model}:{tokens}".encode()).hexdigest()
    return str(10_000 + int(digest[:8], 16) % 90_000)


def _filler(lines: int) -> list[str]:
    return [f"{FILLER[i % len(FILLER)]}" for i in range(lines)]


def _messages(lines: int, pass_key: str) -> list[dict[str, Any]]:
    text = _filler(lines)
    needle = f"The pass key is {pass_key}. Remember it. {pass_key} is the pass key."
    text.insert(lines // 2, needle)
    intro = "There is a pass key hidden in the text below. Find it and remember it."
    prompt = "\n".join([intro, " ".join(text), QUESTION])
    return [{"role": "user", "content": prompt}]


async def build(model: str, tokens: int, count: Counter) -> Haystack:
    """Messages of at most `tokens` prompt tokens (by the server's count when it has one)."""
    key = pass_key_for(model, tokens)
    probe_lines = 200
    measured = await count(_messages(probe_lines, key))
    if measured is None:
        per_line = sum(len(s) + 1 for s in FILLER) / len(FILLER) / CHARS_PER_TOKEN_ESTIMATE
        lines = int(tokens / per_line)
        return Haystack(_messages(lines, key), key, tokens, measured=False)
    base = await count(_messages(0, key)) or 0
    per_line = max(1e-3, (measured - base) / probe_lines)
    lines = int((tokens - base) / per_line)
    messages = _messages(lines, key)
    actual = await count(messages) or tokens
    while actual > tokens and lines > 0:
        # Per-line cost is not exactly linear; trim by the overshoot and count again.
        lines -= max(1, int((actual - tokens) / per_line) + 1)
        messages = _messages(lines, key)
        actual = await count(messages) or tokens
    return Haystack(messages, key, actual, measured=True)
