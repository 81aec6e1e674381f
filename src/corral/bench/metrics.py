"""Metric math: pure functions over recorded timelines (no I/O, no clocks).

Definitions (docs/bench.md explains each and how it differs from `vllm bench serve`,
guidellm and aiperf):

- tokens: the server's `usage.completion_tokens` (reasoning included, as the OpenAI
  usage object defines it); reasoning tokens from `completion_tokens_details` shown
  separately. Without usage: a tokenizer over the returned text when one is given, else
  one token per token chunk — and the result says which (`source`).
- TTFT: first token chunk (reasoning and empty-text token steps count) − sent. TTFVT:
  first visible chunk (content or tool call) − sent.
- e2e: last token chunk − sent (the usage chunk and `[DONE]` are not output).
- TPOT: (e2e − TTFT) / (tokens − 1); decode tok/s = 1 / TPOT.
- seed tok/s: tokens / e2e — the seed write-up's "Tokens/sec" (TTFT folded in).
- chunk gaps: times between consecutive token chunks (vLLM calls these ITL).
- queue delay: sent − scheduled (time the load generator itself held a request back).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np

from corral.bench.timeline import Timeline
from corral.errors import BenchError

TokenSource = Literal["usage", "tokenizer", "chunks"]
Counter = Callable[[str], int]
PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class TokenCount:
    total: int
    reasoning: int
    source: TokenSource

    @property
    def visible(self) -> int:
        return self.total - self.reasoning


def output_tokens(tl: Timeline, counter: Counter | None = None) -> TokenCount:
    """Generated tokens: server usage first; then a tokenizer; then one per token chunk."""
    reasoning_chunks = tl.kinds.count("r")
    usage = tl.usage
    if usage is not None and usage.completion_tokens is not None:
        reasoning = usage.reasoning_tokens
        if reasoning is None:
            # Usage without details: the reasoning share is estimated from the chunks.
            reasoning = min(reasoning_chunks, usage.completion_tokens)
        return TokenCount(usage.completion_tokens, reasoning, "usage")
    if counter is not None:
        reasoning = counter(tl.reasoning_text) if tl.reasoning_text else 0
        visible = counter(tl.content_text) if tl.content_text else 0
        return TokenCount(reasoning + visible, reasoning, "tokenizer")
    return TokenCount(len(tl.chunk_times), reasoning_chunks, "chunks")


def ttft(tl: Timeline) -> float | None:
    return tl.chunk_times[0] - tl.sent if tl.chunk_times else None


def ttfvt(tl: Timeline) -> float | None:
    """Time to the first visible token: content or a tool call, not reasoning."""
    for at, kind in zip(tl.chunk_times, tl.kinds, strict=True):
        if kind in {"c", "t"}:
            return at - tl.sent
    return None


def e2e(tl: Timeline) -> float | None:
    return tl.chunk_times[-1] - tl.sent if tl.chunk_times else None


def tpot(tl: Timeline, tokens: int) -> float | None:
    """(e2e − TTFT) / (tokens − 1); None for a single token (no decode step to time)."""
    if tokens < 2 or not tl.chunk_times:
        return None
    return (tl.chunk_times[-1] - tl.chunk_times[0]) / (tokens - 1)


def chunk_gaps(tl: Timeline) -> list[float]:
    times = tl.chunk_times
    return [b - a for a, b in pairwise(times)]


def queue_delay(tl: Timeline) -> float:
    return max(0.0, tl.sent - tl.scheduled)


@dataclass(frozen=True)
class RequestMetrics:
    ttft: float
    ttfvt: float | None
    e2e: float
    tpot: float | None
    tokens: TokenCount
    queue_delay: float
    gaps: list[float]

    @property
    def decode_tok_s(self) -> float | None:
        return 1.0 / self.tpot if self.tpot else None

    @property
    def seed_tok_s(self) -> float | None:
        return self.tokens.total / self.e2e if self.e2e > 0 else None


def request_metrics(tl: Timeline, counter: Counter | None = None) -> RequestMetrics | None:
    """All per-request figures, or None for a failed request (no token chunk arrived)."""
    first, last = ttft(tl), e2e(tl)
    if not tl.ok or first is None or last is None:
        return None
    tokens = output_tokens(tl, counter)
    return RequestMetrics(
        ttft=first,
        ttfvt=ttfvt(tl),
        e2e=last,
        tpot=tpot(tl, tokens.total),
        tokens=tokens,
        queue_delay=queue_delay(tl),
        gaps=chunk_gaps(tl),
    )


def distribution(values: Iterable[float], ps: Sequence[int] = PERCENTILES) -> dict[str, float]:
    """mean, min, max and percentiles (numpy's linear interpolation, as vLLM uses)."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return {}
    out = {"mean": float(arr.mean()), "min": float(arr.min()), "max": float(arr.max())}
    out.update({f"p{p}": float(np.percentile(arr, p)) for p in ps})
    return out


@dataclass(frozen=True)
class SLO:
    """Service level objectives in seconds; a request is *good* when it meets all set."""

    ttft: float | None = None
    tpot: float | None = None
    e2e: float | None = None

    def as_dict(self) -> dict[str, float]:
        return {
            k: v
            for k, v in (("ttft", self.ttft), ("tpot", self.tpot), ("e2e", self.e2e))
            if v is not None
        }


_SLO_ITEM = re.compile(r"^\s*(ttft|tpot|e2e)\s*[=:]\s*([0-9.]+)\s*(ms|s)?\s*$")


def parse_slo(text: str) -> SLO:
    """`ttft=500ms,tpot=50ms,e2e=10s` → SLO (a bare number means milliseconds, as vLLM)."""
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _SLO_ITEM.match(item)
        if not match:
            raise BenchError(
                f"invalid SLO item {item!r} in --slo {text!r}",
                hint="write e.g. --slo ttft=500ms,tpot=50ms,e2e=10s (keys: ttft, tpot, e2e)",
            )
        key, number, unit = match.groups()
        values[key] = float(number) / (1.0 if unit == "s" else 1000.0)
    return SLO(**values)


def is_good(m: RequestMetrics, slo: SLO) -> bool:
    """Meets every SLO set. A one-token reply has TPOT 0 for this purpose (as vLLM)."""
    if slo.ttft is not None and m.ttft > slo.ttft:
        return False
    if slo.tpot is not None and (m.tpot or 0.0) > slo.tpot:
        return False
    return not (slo.e2e is not None and m.e2e > slo.e2e)


def span(timelines: Sequence[Timeline]) -> float:
    """Measured duration: first scheduled send → last byte of the last request."""
    if not timelines:
        return 0.0
    return max(t.end or t.sent for t in timelines) - min(t.scheduled for t in timelines)


def steady_tokens_per_s(
    timelines: Sequence[Timeline], per_request: Sequence[RequestMetrics | None]
) -> float | None:
    """Output tok/s while the load was at its full level: between the first completion and
    the last send, when no request has yet drained and none is left to start. Each token
    chunk carries its request's tokens ÷ chunks (as guidellm spreads usage over iterations).
    """
    done = [(t, m) for t, m in zip(timelines, per_request, strict=True) if m is not None]
    if len(done) < 2:
        return None
    start = min(t.chunk_times[-1] for t, _ in done)
    stop = max(t.sent for t in timelines)
    # A window shorter than a typical request holds too few chunks to be a rate (a run of
    # two waves has a window of ~0 s): no figure rather than a wild one.
    if stop - start < float(np.median([m.e2e for _, m in done])):
        return None
    tokens = 0.0
    for t, m in done:
        weight = m.tokens.total / len(t.chunk_times)
        tokens += weight * sum(1 for at in t.chunk_times if start <= at <= stop)
    return tokens / (stop - start)


@dataclass
class Summary:
    """One load level's result (all times in seconds)."""

    requests: int
    ok: int
    failed: int
    duration: float
    output_tokens: int
    reasoning_tokens: int
    prompt_tokens: int
    output_tok_s: float
    req_s: float
    steady_output_tok_s: float | None
    goodput_req_s: float | None
    good_fraction: float | None
    ttft: dict[str, float]
    ttfvt: dict[str, float]
    tpot: dict[str, float]
    chunk_gap: dict[str, float]
    e2e: dict[str, float]
    queue_delay: dict[str, float]
    token_sources: dict[str, int]
    early_stops: int
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _token_notes(sources: dict[str, int], early: int, ok: int) -> list[str]:
    notes: list[str] = []
    missing = ok - sources.get("usage", 0)
    if missing:
        how = "the tokenizer" if sources.get("tokenizer") else "one token per stream chunk"
        notes.append(
            f"{missing} of {ok} responses carried no usage: their tokens were counted with {how}"
        )
    if early:
        notes.append(
            f"{early} of {ok} requests stopped before max_tokens (ignore_eos not honoured "
            "or not sent): output lengths vary"
        )
    return notes


def _early_stops(timelines: Sequence[Timeline], ms: Sequence[RequestMetrics]) -> int:
    return sum(
        1
        for t, m in zip(timelines, ms, strict=True)
        if t.max_tokens is not None and m.tokens.total < t.max_tokens
    )


def summarize(
    timelines: Sequence[Timeline], *, slo: SLO | None = None, counter: Counter | None = None
) -> Summary:
    """Aggregate the measured (non-warm-up) requests of one load level."""
    measured = [t for t in timelines if not t.warmup]
    per = [request_metrics(t, counter) for t in measured]
    good = [(t, m) for t, m in zip(measured, per, strict=True) if m is not None]
    ms = [m for _, m in good]
    duration = span(measured)
    out_tokens = sum(m.tokens.total for m in ms)
    sources: dict[str, int] = {}
    for m in ms:
        sources[m.tokens.source] = sources.get(m.tokens.source, 0) + 1
    early = _early_stops([t for t, _ in good], ms)
    n_good = sum(1 for m in ms if is_good(m, slo)) if slo and slo.as_dict() else None

    def rate(n: float) -> float:
        return n / duration if duration > 0 else 0.0

    return Summary(
        requests=len(measured),
        ok=len(ms),
        failed=len(measured) - len(ms),
        duration=duration,
        output_tokens=out_tokens,
        reasoning_tokens=sum(m.tokens.reasoning for m in ms),
        prompt_tokens=sum((t.usage.prompt_tokens or 0) if t.usage else 0 for t, _ in good),
        output_tok_s=rate(out_tokens),
        req_s=rate(len(ms)),
        steady_output_tok_s=steady_tokens_per_s(measured, per),
        goodput_req_s=rate(n_good) if n_good is not None else None,
        good_fraction=(n_good / len(measured)) if n_good is not None and measured else None,
        ttft=distribution(m.ttft for m in ms),
        ttfvt=distribution(m.ttfvt for m in ms if m.ttfvt is not None),
        tpot=distribution(m.tpot for m in ms if m.tpot is not None),
        chunk_gap=distribution(g for m in ms for g in m.gaps),
        e2e=distribution(m.e2e for m in ms),
        queue_delay=distribution(m.queue_delay for m in ms),
        token_sources=sources,
        early_stops=early,
        errors=sorted({t.error for t in measured if t.error})[:5],
        notes=_token_notes(sources, early, len(ms)),
    )
