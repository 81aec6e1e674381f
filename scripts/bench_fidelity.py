"""How exactly does corral's load generator measure? Against the scripted engine, whose
timing is the truth (first token 200 ms after the request, then one token every 20 ms,
paced on an absolute schedule), compare measured TTFT and TPOT at concurrency 1 and 256,
then hold 1,000 streams open at once.

    make bench-fidelity        (or: .venv/bin/python scripts/bench_fidelity.py)

Prints figures, then one JSON object on its last line: ttft_err_pct, tpot_err_pct (the
worse of the two levels, median request against the truth), max_streams (streams held
open at once, all completed), and the detail per level. The machine is shared, so the
medians are used: one late wake-up of a busy core must not decide the figure.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from corral.bench.client import Endpoint, build_payload
from corral.bench.load import Request, Runner, run_async
from corral.bench.metrics import summarize
from corral.testing.launch import scripted_engine

TTFT, ITL, TOKENS = 0.2, 0.02, 100
LEVELS = ((1, 10), (256, 256))  # (concurrency, measured requests)
STREAMS, STREAM_ITL, STREAM_TOKENS = 1000, 0.25, 8


def requests(endpoint: Endpoint, n: int, tokens: int) -> list[Request]:
    payload = build_payload(endpoint, "hello", tokens, ignore_eos=True, extra={})
    return [Request(payload, tokens) for _ in range(n)]


def err_pct(measured: float, truth: float) -> float:
    return abs(measured - truth) / truth * 100.0


async def level(base_url: str, concurrency: int, n: int) -> dict[str, Any]:
    endpoint = Endpoint(base_url, "scripted", api="completions")
    runner = Runner(endpoint)
    # The workers start spread over one request's length, as steady traffic would be; a
    # burst of 256 requests in one millisecond measures the burst, not the client.
    ramp = TTFT + ITL * (TOKENS - 1) if concurrency > 1 else 0.0
    run = await runner.concurrency(
        concurrency, requests(endpoint, n + concurrency, TOKENS), warmup=concurrency, ramp=ramp
    )
    s = summarize(run.timelines)
    return {
        "concurrency": concurrency,
        "ok": s.ok,
        "requests": s.requests,
        "ttft_p50_ms": s.ttft["p50"] * 1000,
        "ttft_mean_ms": s.ttft["mean"] * 1000,
        "tpot_p50_ms": s.tpot["p50"] * 1000,
        "tpot_mean_ms": s.tpot["mean"] * 1000,
        "ttft_err_pct": err_pct(s.ttft["p50"], TTFT),
        "tpot_err_pct": err_pct(s.tpot["p50"], ITL),
        "queue_p99_ms": s.queue_delay["p99"] * 1000,
        "loop_lag_p99_ms": run.loop_lag["p99"] * 1000,
        "output_tok_s": s.output_tok_s,
    }


async def streams(base_url: str) -> dict[str, Any]:
    endpoint = Endpoint(base_url, "scripted", api="completions")
    run = await Runner(endpoint).concurrency(STREAMS, requests(endpoint, STREAMS, STREAM_TOKENS))
    s = summarize(run.timelines)
    held = run.peak_in_flight if s.ok == s.requests else 0
    return {
        "max_streams": held,
        "ok": s.ok,
        "requests": s.requests,
        "peak_in_flight": run.peak_in_flight,
        "ttft_p50_ms": s.ttft["p50"] * 1000,
        "errors": s.errors,
    }


def main() -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args = ("--ttft", str(TTFT), "--itl", str(ITL), "--tokens", str(TOKENS))
    started = time.monotonic()
    with scripted_engine(*args) as engine:
        levels = [run_async(level(engine.base_url, c, n)) for c, n in LEVELS]
    for lv in levels:
        print(
            f"c={lv['concurrency']:>4}: TTFT p50 {lv['ttft_p50_ms']:.2f} ms "
            f"(err {lv['ttft_err_pct']:.2f}%), TPOT p50 {lv['tpot_p50_ms']:.3f} ms "
            f"(err {lv['tpot_err_pct']:.2f}%), queue p99 {lv['queue_p99_ms']:.2f} ms, "
            f"loop lag p99 {lv['loop_lag_p99_ms']:.2f} ms, {lv['ok']}/{lv['requests']} ok"
        )
    args = ("--ttft", str(TTFT), "--itl", str(STREAM_ITL), "--tokens", str(STREAM_TOKENS))
    with scripted_engine(*args) as engine:
        held = run_async(streams(engine.base_url))
    print(
        f"{STREAMS} streams at once: peak {held['peak_in_flight']} in flight, "
        f"{held['ok']}/{held['requests']} completed, TTFT p50 {held['ttft_p50_ms']:.1f} ms"
    )
    result = {
        "ttft_err_pct": max(lv["ttft_err_pct"] for lv in levels),
        "tpot_err_pct": max(lv["tpot_err_pct"] for lv in levels),
        "max_streams": held["max_streams"],
        "within_1pct": all(lv["ttft_err_pct"] <= 1 and lv["tpot_err_pct"] <= 1 for lv in levels),
        "levels": levels,
        "streams": held,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
