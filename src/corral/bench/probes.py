"""Two single-stream probes of the prompt side of an engine.

- prefill: TTFT at several context lengths (distinct prompts, one output token), and the
  prefill rate prompt tokens ÷ TTFT.
- prefix cache: TTFT for prompts that share a long prefix with an earlier request
  (the engine may reuse its KV cache) against prompts whose prefix of the same length is
  new each time. The ratio is the speed-up the prefix cache gives; `cached_tokens` is the
  server's own count where it reports one.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from typing import Any

from corral.bench.client import Endpoint, build_payload
from corral.bench.load import Request, Runner
from corral.bench.prompts import TokenCounter, fit_prompt, shared_prefix
from corral.bench.timeline import Timeline


@dataclass
class ProbeSettings:
    contexts: list[int] = field(default_factory=lambda: [128, 512, 1024, 2048])
    prefix_tokens: int = 1024
    trials: int = 3
    seed: int = 0


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


async def _ttfts(runner: Runner, endpoint: Endpoint, prompts: list[str]) -> list[Timeline]:
    reqs = [Request(build_payload(endpoint, p, 1, ignore_eos=True, extra={}), 1) for p in prompts]
    run = await runner.concurrency(1, reqs)
    return run.timelines


def _ttft_values(timelines: list[Timeline]) -> list[float]:
    return [t.chunk_times[0] - t.sent for t in timelines if t.ok]


async def prefill(
    runner: Runner, endpoint: Endpoint, counter: TokenCounter, settings: ProbeSettings
) -> list[dict[str, Any]]:
    rng = random.Random(settings.seed)  # noqa: S311  (reproducible prompts, not secrets)
    chat = endpoint.api == "chat"
    rows = []
    for ctx in settings.contexts:
        prompts = [
            (await fit_prompt(counter, ctx, rng, chat=chat))[0] for _ in range(settings.trials)
        ]
        tls = await _ttfts(runner, endpoint, prompts)
        ttft = _median(_ttft_values(tls))
        used = [t.usage.prompt_tokens for t in tls if t.usage and t.usage.prompt_tokens]
        tokens = int(statistics.median(used)) if used else ctx
        rows.append(
            {
                "context": ctx,
                "prompt_tokens": tokens,
                "ttft": ttft,
                "prefill_tok_s": tokens / ttft if ttft else None,
                "errors": [t.error for t in tls if t.error],
            }
        )
    return rows


async def prefix_cache(
    runner: Runner, endpoint: Endpoint, settings: ProbeSettings
) -> dict[str, Any]:
    shared = shared_prefix(settings.prefix_tokens, seed=settings.seed + 1)
    questions = [f"Question {i}: name one word from the passage." for i in range(settings.trials)]
    fresh = [
        shared_prefix(settings.prefix_tokens, seed=settings.seed + 100 + i) + q
        for i, q in enumerate(questions)
    ]
    cold = await _ttfts(runner, endpoint, fresh)
    await _ttfts(runner, endpoint, [shared + "Question: what is this?"])  # fills the cache
    warm = await _ttfts(runner, endpoint, [shared + q for q in questions])
    without, with_ = _median(_ttft_values(cold)), _median(_ttft_values(warm))
    cached = [t.usage.cached_tokens for t in warm if t.usage and t.usage.cached_tokens]
    return {
        "prefix_tokens": settings.prefix_tokens,
        "ttft_without": without,
        "ttft_with": with_,
        "speedup": without / with_ if without and with_ else None,
        "cached_tokens": int(statistics.median(cached)) if cached else None,
        "prompt_tokens": next((t.usage.prompt_tokens for t in warm if t.usage), None),
    }


async def run_probes(
    endpoint: Endpoint,
    settings: ProbeSettings,
    counter: TokenCounter,
    *,
    runner: Runner,
    which: tuple[str, ...] = ("prefill", "prefix-cache"),
) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "probes", "settings": settings.__dict__.copy()}
    if "prefill" in which:
        out["prefill"] = await prefill(runner, endpoint, counter, settings)
    if "prefix-cache" in which:
        out["prefix_cache"] = await prefix_cache(runner, endpoint, settings)
    return out
