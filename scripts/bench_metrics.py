"""The cost of the gateway's /metrics with engine metrics, side by side in one run.

    make bench-metrics                                  # against a scripted engine
    python scripts/bench_metrics.py --engine-url http://127.0.0.1:8001 --replicas 4
        # against a real engine (e.g. vLLM; run it under flock /tmp/corral-vllm.lock)

Three gateways in this process, in front of the same engine(s), scraped in turn
(interleaved, the order rotating each round, so machine noise hits all alike):
  `without`  /metrics with no engine scraping (the gateway before engine metrics),
  `cached`   engine metrics as shipped (each engine fetched at most every 2 s),
  `fetch`    engine metrics with the cache off: every scrape fetches every engine.
`--replicas N` lists the engine N times (as N replicas), to see how the cost grows with a
fleet. Prints ms per scrape (p50, mean) and the added ms against `without`, then JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from corral.config import GatewaySettings
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import Gateway, upstream_session
from corral.gateway.engine_metrics import EngineScraper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from tests.support.scripted import start_scripted

MODES = ("without", "cached", "fetch")


def build(mode: str, fleet: StaticFleet, session: aiohttp.ClientSession) -> Gateway:
    engines = None
    if mode != "without":
        engines = EngineScraper(session, max_age=2.0 if mode == "cached" else 0.0)
    return Gateway(fleet, GatewaySettings(), session=session, engines=engines)


async def serve(gateway: Gateway) -> tuple[aiohttp.web.ServerRunner, str]:
    runner = aiohttp.web.ServerRunner(aiohttp.web.Server(gateway.handle), access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/metrics"


async def measure(engine_url: str, replicas: int, rounds: int) -> dict[str, Any]:
    fleet = StaticFleet.of(
        (Policy("bench"), Replica(f"r{i}", "bench", engine_url, routable=True, state="ready"))
        for i in range(replicas)
    )
    session = upstream_session()
    served = [await serve(build(mode, fleet, session)) for mode in MODES]
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    sizes: dict[str, int] = {}
    async with aiohttp.ClientSession() as client:
        pairs = list(zip(MODES, served, strict=True))
        for index in range(rounds):
            shift = index % len(pairs)  # each mode goes first as often as the others
            for mode, (_runner, url) in pairs[shift:] + pairs[:shift]:
                began = time.perf_counter()
                async with client.get(url) as answer:
                    body = await answer.read()
                times[mode].append((time.perf_counter() - began) * 1000)
                sizes[mode] = len(body)
            await asyncio.sleep(0.05)
    for runner, _url in served:
        await runner.cleanup()
    await session.close()
    return summary(times, sizes, replicas, rounds)


def summary(
    times: dict[str, list[float]], sizes: dict[str, int], replicas: int, rounds: int
) -> dict[str, Any]:
    base = statistics.median(times["without"])
    return {
        "replicas": replicas,
        "rounds": rounds,
        "modes": {
            mode: {
                "p50_ms": round(statistics.median(values), 3),
                "mean_ms": round(statistics.fmean(values), 3),
                "added_p50_ms": round(statistics.median(values) - base, 3),
                "bytes": sizes[mode],
            }
            for mode, values in times.items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine-url", help="an engine's base URL (default: a scripted one)")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    scripted = None if args.engine_url else start_scripted("--tokens", "4")
    url = args.engine_url or (scripted.base_url if scripted else "")
    try:
        result = asyncio.run(measure(url, args.replicas, args.rounds))
    finally:
        if scripted is not None:
            scripted.stop()
    print(f"/metrics, {args.replicas} replica(s) of {url}, {args.rounds} scrapes per mode")
    print(f"{'mode':<10}{'p50 ms':>10}{'mean ms':>10}{'added p50':>12}{'bytes':>10}")
    for mode, row in result["modes"].items():
        print(f"{mode:<10}{row['p50_ms']:>10}{row['mean_ms']:>10}{row['added_p50_ms']:>12}"
              f"{row['bytes']:>10}")  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
