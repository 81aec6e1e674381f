"""One candidate's figures against a running engine: the workload at rising concurrency
until the SLO breaks (bench's load generator and metrics), repeated until the goodput's
spread is within the bound."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from typing import Any

import httpx

from corral.bench.client import Endpoint, build_payload
from corral.bench.load import LevelRun, Request, Runner, run_async
from corral.bench.prompts import ServerTokenizer, TokenCounter, fit_prompt, shared_prefix
from corral.bench.serve import ServeSettings, level_result
from corral.tune.workload import Objective, Workload


@dataclass(frozen=True)
class Repeats:
    most: int = 2
    bound: float = 0.10
    """stop repeating once (max − min) / mean of the goodput is within this"""


def level_passes(level: dict[str, Any], objective: Objective) -> bool:
    return (level["good_fraction"] or 0.0) >= objective.share and level["failed"] == 0


async def workload_requests(counter: TokenCounter, endpoint: Endpoint, workload: Workload,
                            n: int, *, seed: int, text_seed: int) -> list[Request]:  # fmt: skip
    """`n` requests drawn from the workload's shapes. `seed` draws the shapes (lengths),
    `text_seed` the prompts' words; both the same for every candidate."""
    draw = random.Random(seed)  # noqa: S311  (reproducible load, not secrets)
    words = random.Random(text_seed)  # noqa: S311
    prefix = shared_prefix(workload.shared_prefix) if workload.shared_prefix else ""
    weights = [s.weight for s in workload.shapes]
    out = []
    for shape in draw.choices(workload.shapes, weights, k=n):
        text, count = await fit_prompt(counter, shape.input, words, chat=False, prefix=prefix)
        payload = build_payload(endpoint, text, shape.output, ignore_eos=True, extra={})
        out.append(Request(payload, shape.output, count))
    return out


async def replay_requests(counter: TokenCounter, endpoint: Endpoint,
                          workload: Workload, seed: int = 0) -> list[Request]:  # fmt: skip
    """The recorded shapes in their order, each with a prompt of its length (seeded)."""
    rng = random.Random(seed)  # noqa: S311  (reproducible load, not secrets)
    out = []
    for shape in workload.shapes:
        text, count = await fit_prompt(counter, shape.input, rng, chat=False)
        payload = build_payload(endpoint, text, shape.output, ignore_eos=True, extra={})
        out.append(Request(payload, shape.output, count))
    return out


async def _level(runner: Runner, counter: TokenCounter, workload: Workload, level: int,
                 replayed: list[Request], *, repeat: int) -> tuple[str, LevelRun]:  # fmt: skip
    """One load level: the trace `level` times as fast, else a closed loop of `level`."""
    if workload.arrivals:
        offsets = [t / level for t in workload.arrivals]
        return "speed", await runner.schedule(offsets, replayed, warmup=1)
    n = workload.requests_at(level) + level
    # Every repeat sends the same lengths in the same order with new words: new words so
    # the engine's prefix cache cannot serve a repeat; the same lengths so the spread
    # between repeats is the machine's and the engine's, not a different draw of the mix
    # (with three requests a level, one draw had 64-token prompts where another had 256).
    requests = await workload_requests(counter, runner.endpoint, workload, n, seed=level,
                                       text_seed=level + 1000 * repeat)  # fmt: skip
    return "concurrency", await runner.concurrency(level, requests, warmup=level)


async def sweep(
    endpoint: Endpoint, workload: Workload, objective: Objective, repeat: int = 0
) -> list[dict[str, Any]]:
    """Every level up to and including the first that breaks the SLO. Each repeat sends
    the same lengths with new prompt words (the same for every candidate): a repeat of the
    same prompts would be served from the engine's prefix cache (seen here: llama-server's
    TTFT fell from 8-23 s to 0.05-0.35 s in the second sweep, vLLM's from 0.5-1.5 s to
    0.16-0.27 s)."""
    out: list[dict[str, Any]] = []
    settings = ServeSettings(slo=objective.slo)
    runner = Runner(endpoint)
    async with httpx.AsyncClient(timeout=60) as client:
        counter = ServerTokenizer(client, endpoint.base_url, endpoint.model)
        replayed = (await replay_requests(counter, endpoint, workload, repeat)
                    if workload.arrivals else [])  # fmt: skip
        for level in workload.levels:
            kind, run = await _level(runner, counter, workload, level, replayed, repeat=repeat)
            out.append(level_result(run, kind, level, settings, None))
            if not level_passes(out[-1], objective):
                break
    return out


def figures(levels: list[dict[str, Any]], objective: Objective) -> dict[str, Any]:
    """Goodput (best passing level), decode tok/s at concurrency 1, and the miss if none."""
    passing = [lv for lv in levels if level_passes(lv, objective)]
    first = levels[0] if levels else {}
    tpot = (first.get("tpot") or {}).get("p50")
    out: dict[str, Any] = {
        "goodput": max((lv["goodput_req_s"] or 0.0 for lv in passing), default=0.0),
        "max_level": max((lv["level"] for lv in passing), default=0),
        "decode_tok_s": (1.0 / tpot) if tpot else None,
        "good_fraction_c1": first.get("good_fraction"),
    }
    if not passing and first:
        out["miss"] = _miss(first, objective)
        out["miss_ratio"] = miss_ratio(first, objective)
    return out


def miss_ratio(level: dict[str, Any], objective: Objective) -> float:
    """How far the level is from the SLO: the largest seen ÷ limit at the SLO's percentile
    (1.0 = just meets it), so candidates that all miss can be ranked by how close they came."""
    key = f"p{round(objective.share * 100)}"
    ratios = [((level.get(name) or {}).get(key) or 0.0) / limit
              for name, limit in objective.slo.as_dict().items() if limit]  # fmt: skip
    return max(ratios, default=1.0)


def _miss(level: dict[str, Any], objective: Objective) -> str:
    """By how much the concurrency-1 level misses each threshold at the SLO's percentile."""
    key = f"p{round(objective.share * 100)}"
    parts = []
    for name, limit in objective.slo.as_dict().items():
        seen = (level.get(name) or {}).get(key) or (level.get(name) or {}).get("p99")
        if seen is not None and seen > limit:
            parts.append(f"{name} {key} {seen * 1000:.0f} ms vs {limit * 1000:.0f} ms "
                         f"(+{(seen / limit - 1) * 100:.0f} %)")  # fmt: skip
    return "; ".join(parts) or f"only {level.get('good_fraction') or 0:.0%} of requests met it"


def spread(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return (max(values) - min(values)) / mean if mean > 0 else 0.0


def measure(endpoint: Endpoint, workload: Workload, objective: Objective,
            repeats: Repeats) -> dict[str, Any]:  # fmt: skip
    """Repeat the sweep until the goodput spread is within the bound (or `most` runs)."""
    runs: list[dict[str, Any]] = []
    while len(runs) < repeats.most:
        levels = run_async(sweep(endpoint, workload, objective, repeat=len(runs)))
        runs.append({"levels": levels, **figures(levels, objective)})
        found = spread([r["goodput"] for r in runs])
        if found is not None and found <= repeats.bound:
            break
    goodputs = [r["goodput"] for r in runs]
    decodes = [r["decode_tok_s"] for r in runs if r["decode_tok_s"]]
    return {
        "goodput": statistics.median(goodputs),
        "spread": spread(goodputs),
        "decode_tok_s": statistics.median(decodes) if decodes else None,
        "repeats": runs,
        "miss": runs[-1].get("miss"),
        "miss_ratio": runs[-1].get("miss_ratio"),
    }
