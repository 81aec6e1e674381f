"""What the load generator records for one request: a timeline of client-side timestamps.

Every time is `time.perf_counter()` seconds in the benchmarking process. Nothing here is
computed; the metric math in `corral.bench.metrics` is pure functions over these records,
so it can be tested on synthetic timelines.

    scheduled ── sent ── first chunk ... last token chunk ── end
      (queue delay)  (TTFT)      (decode: TPOT, chunk gaps)   (stream close)

A *token chunk* is a stream event that carries generated output: visible content, reasoning
(`reasoning` or `reasoning_content`), a tool-call delta, or a token step whose text is
empty (`""` without a finish reason: a special token, or bytes of a character not yet
complete). The role-only chunk and the trailing usage chunk are not token chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ChunkKind = Literal["content", "reasoning", "tool", "empty"]
KIND_CODES: dict[ChunkKind, str] = {"content": "c", "reasoning": "r", "tool": "t", "empty": "e"}


@dataclass
class Usage:
    """The server's own token counts (`usage`, sent last when `include_usage` is set)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        details = data.get("completion_tokens_details") or {}
        prompt_details = data.get("prompt_tokens_details") or {}
        return cls(
            prompt_tokens=data.get("prompt_tokens"),
            completion_tokens=data.get("completion_tokens"),
            reasoning_tokens=details.get("reasoning_tokens"),
            cached_tokens=prompt_details.get("cached_tokens"),
        )


@dataclass
class Timeline:
    """One request as the client saw it. `kinds` holds one letter per token chunk: c/r/t/e."""

    scheduled: float
    sent: float = 0.0
    chunk_times: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    end: float = 0.0
    usage: Usage | None = None
    status: int = 0
    error: str | None = None
    finish_reason: str | None = None
    max_tokens: int | None = None
    prompt_tokens_sent: int | None = None
    content_text: str = ""
    reasoning_text: str = ""
    warmup: bool = False
    server_recv: float | None = None
    server_times: list[float] = field(default_factory=list)
    """Engine-side perf_counter stamps (`x_recv`, `x_t`), when the engine sends them: the
    scripted engine does with --stamp, so fidelity checks can split client error from
    engine lateness (same clock: CLOCK_MONOTONIC is system-wide on Linux)."""

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.chunk_times)

    def add_chunk(self, at: float, kind: ChunkKind) -> None:
        self.chunk_times.append(at)
        self.kinds.append(KIND_CODES[kind])
