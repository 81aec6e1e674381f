"""Python function calls the gateway makes per chat request: a noise-free hot-path figure.

    python scripts/gateway_calls.py            # this tree
    PYTHONPATH=/path/to/other/src python scripts/gateway_calls.py   # another tree, to compare

Latency on a shared 2-core machine swings by tens of percent between runs; a count of the
calls made in corral's gateway modules (and in all, client included) per request does not.
The gateway and an aiohttp client share this process; the engine is the scripted one.
20 warm-up requests, then 200 profiled.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
from pathlib import Path

import aiohttp

from corral.config import GatewaySettings
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from tests.support.scripted import RunningEngine, start_scripted

REQUESTS = 200


async def profile(engine: RunningEngine) -> pstats.Stats:
    replica = Replica("r", "m", engine.base_url, routable=True, state="ready")
    server = GatewayServer(StaticFleet.of([(Policy("m"), replica)]), GatewaySettings(), port=0)
    await server.start()
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    prof = cProfile.Profile()
    async with aiohttp.ClientSession() as client:
        for index in range(20 + REQUESTS):
            if index == 20:
                prof.enable()
            async with client.post(server.url + "/v1/chat/completions", json=body) as answer:
                await answer.read()
        prof.disable()
    await server.stop()
    return pstats.Stats(prof)


def main() -> int:
    engine = start_scripted("--tokens", "4", model="m")
    try:
        stats = asyncio.run(profile(engine))
    finally:
        engine.stop()
    table = stats.stats  # type: ignore[attr-defined]
    ours = sum(row[1] for where, row in table.items() if "/corral/gateway/" in where[0])
    total = stats.total_calls  # type: ignore[attr-defined]
    each, mine = total / REQUESTS, ours / REQUESTS
    print(f"calls per request: {each:.1f} in all, {mine:.1f} in corral/gateway/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
