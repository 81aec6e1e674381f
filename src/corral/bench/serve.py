"""`corral bench serve`: synthetic prompts of a set length, a fixed output length, and a
sweep of load levels (concurrency or Poisson rate); one summary per level.

Fixed output length needs `ignore_eos` (a vLLM/SGLang extension). One probe request
finds out whether the endpoint accepts it; when it does not, the run goes on without it
and the result says so (and `early_stops` counts the replies that ended short).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from corral.bench.client import Endpoint, build_payload, stream_request
from corral.bench.load import LevelRun, Request, Runner, make_session
from corral.bench.metrics import SLO, Counter, summarize
from corral.bench.prompts import TokenCounter, make_prompts
from corral.bench.timeline import Timeline
from corral.errors import BenchError

OnLevel = Callable[[str, int], None]
"""on_level(label, total requests incl. warm-up): a level is about to start."""


@dataclass
class ServeSettings:
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    rates: list[float] = field(default_factory=list)
    num_requests: int = 32
    warmup: int | None = None
    input_len: int = 128
    output_len: int = 64
    ignore_eos: bool = True
    max_concurrency: int = 0
    ramp: float = 0.0
    """Concurrency mode: spread the workers' first sends over this many seconds."""
    temperature: float | None = None
    """None: the server's default sampling (as `vllm bench serve`)."""
    slo: SLO = field(default_factory=SLO)
    seed: int = 0

    def levels(self) -> list[tuple[str, float]]:
        if self.rates:
            return [("rate", r) for r in self.rates]
        return [("concurrency", float(c)) for c in self.concurrency]

    def warmup_for(self, level: float) -> int:
        return self.warmup if self.warmup is not None else max(1, int(level))

    def sampling(self) -> dict[str, Any]:
        return {} if self.temperature is None else {"temperature": self.temperature}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["slo"] = self.slo.as_dict()
        return out


async def probe_ignore_eos(
    session: aiohttp.ClientSession, endpoint: Endpoint, prompt: str
) -> tuple[bool, Timeline]:
    """Send one short request with ignore_eos; retry without when the server refuses it."""
    for ignore in (True, False):
        payload = build_payload(endpoint, prompt, 4, ignore_eos=ignore, extra={})
        tl = await stream_request(
            session, endpoint, payload, Timeline(scheduled=time.perf_counter())
        )
        if tl.ok:
            return ignore, tl
        if tl.status not in (400, 422):
            break
    raise BenchError(
        f"the probe request to {endpoint.url} failed: {tl.error}",
        hint="check --model (the served name), --api and --api-key",
    )


async def _requests(
    counter: TokenCounter,
    settings: ServeSettings,
    endpoint: Endpoint,
    *,
    n: int,
    seed: int,
    ignore_eos: bool,
) -> list[Request]:
    prompts = await make_prompts(
        counter, n, settings.input_len, chat=endpoint.api == "chat", seed=seed
    )
    return [
        Request(
            build_payload(
                endpoint,
                text,
                settings.output_len,
                ignore_eos=ignore_eos,
                extra=settings.sampling(),
            ),
            settings.output_len,
            count,
        )
        for text, count in prompts
    ]


async def run_level(
    runner: Runner, kind: str, level: float, requests: list[Request], settings: ServeSettings
) -> LevelRun:
    warm = settings.warmup_for(level)
    if kind == "rate":
        return await runner.rate(
            level, requests, warm, max_concurrency=settings.max_concurrency, seed=settings.seed
        )
    return await runner.concurrency(int(level), requests, warm, ramp=settings.ramp)


def level_result(
    run: LevelRun, kind: str, level: float, settings: ServeSettings, fallback: Counter | None
) -> dict[str, Any]:
    summary = summarize(run.timelines, slo=settings.slo, counter=fallback)
    return {
        "label": run.label,
        "kind": kind,
        "level": level,
        "warmup": sum(1 for t in run.timelines if t.warmup),
        "peak_in_flight": run.peak_in_flight,
        "loop_lag": run.loop_lag,
        **summary.as_dict(),
    }


async def run_serve(
    endpoint: Endpoint,
    settings: ServeSettings,
    counter: TokenCounter,
    *,
    runner: Runner,
    fallback: Counter | None = None,
    on_level: OnLevel | None = None,
) -> dict[str, Any]:
    """Probe, then run every level; returns the JSON-ready result."""
    async with make_session(1) as session:
        ignore_eos, probe = await probe_ignore_eos(session, endpoint, "Say hello.")
    notes: list[str] = []
    if settings.ignore_eos and not ignore_eos:
        notes.append("the endpoint refused ignore_eos: output lengths are the model's own")
    if probe.usage is None:
        notes.append("the endpoint sent no usage with include_usage: tokens are estimated")
    levels = []
    rng = random.Random(settings.seed)  # noqa: S311  (reproducible prompts, not secrets)
    for kind, level in settings.levels():
        n = settings.num_requests + settings.warmup_for(level)
        requests = await _requests(
            counter,
            settings,
            endpoint,
            n=n,
            seed=rng.randrange(1 << 30),
            ignore_eos=settings.ignore_eos and ignore_eos,
        )
        if on_level is not None:
            on_level(f"{kind} {level:g}", n)
        run = await run_level(runner, kind, level, requests, settings)
        levels.append(level_result(run, kind, level, settings, fallback))
    return {
        "kind": "serve",
        "settings": settings.as_dict(),
        "ignore_eos_sent": settings.ignore_eos and ignore_eos,
        "notes": notes,
        "levels": levels,
    }
