"""Gateway overhead: direct to the scripted engine vs through the gateway, side by side.

    make bench-gateway                       # the corral gateway (about two minutes)
    python scripts/bench_gateway.py --stack starlette-httpx   # a bare proxy on another stack
    python scripts/bench_gateway.py --quick  # smaller counts, for a first look
    python scripts/bench_gateway.py --compare 3   # every stack 3 times: CPU and latency

Processes: two scripted engines (`fast`: 16 tokens at once; `paced`: 64 chunks 20 ms
apart), the gateway in its own process (uvloop), and this client (aiohttp, uvloop). Every
figure is measured direct and through the gateway in the same run, interleaved (direct and
gateway requests alternate, or alternate in blocks for concurrent phases), so machine
noise hits both alike. "Added" = gateway percentile − direct percentile.

Phases: non-streamed latency at concurrency 1 and 64; a 64-chunk stream (time to first
chunk; per chunk, the delay from the engine's write, stamped in the chunk, to arrival);
open-loop rate steps up to the highest rate whose added p99 stays under 10 ms; gateway RSS
before and after 100,000 requests (bounded by --rss-seconds); the gateway process's CPU
time per request and per chunk. Prints a table, then one JSON object as the last line.

`--stack` selects what runs in the gateway process: `corral` (the real gateway), or a
bare pass-through proxy built on another server/client pair (used for
docs/decisions/0001-gateway-stack.md): aiohttp-aiohttp, starlette-aiohttp,
starlette-httpx, aiohttp-httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from tests.support.scripted import RunningEngine, start_scripted

STACKS = ("corral", "aiohttp-aiohttp", "starlette-aiohttp", "starlette-httpx", "aiohttp-httpx")
CHAT = "/v1/chat/completions"
STREAM_CHUNKS, STREAM_ITL = 64, 0.020


# --------------------------------------------------------------------------------------
# The gateway process
# --------------------------------------------------------------------------------------
def serve_main(stack: str, upstreams: dict[str, str]) -> None:
    import uvloop

    uvloop.install()
    asyncio.run(_serve(stack, upstreams))


async def _serve(stack: str, upstreams: dict[str, str]) -> None:
    if stack == "corral":
        port = await _serve_corral(upstreams)
    elif stack.startswith("starlette"):
        port = await _serve_starlette(stack, upstreams)
    else:
        port = await _serve_bare_aiohttp(stack, upstreams)
    print(f"READY port={port}", flush=True)
    await asyncio.Event().wait()


async def _serve_corral(upstreams: dict[str, str]) -> int:
    from corral.config import GatewaySettings, Limits
    from corral.fleet import Policy, Replica, StaticFleet
    from corral.gateway import GatewayServer

    roomy = Limits(max_in_flight=100_000, max_queue=100_000)
    fleet = StaticFleet.of(
        [
            (Policy(name, limits=roomy), Replica(name, name, url, routable=True))
            for name, url in upstreams.items()
        ]
    )
    server = GatewayServer(fleet, GatewaySettings(), port=0)
    await server.start()
    return server.port


def _rewrite(body: bytes) -> tuple[str, bytes]:
    """What every bare proxy does per request: parse, pick the upstream, re-encode."""
    payload = json.loads(body)
    return payload["model"], json.dumps(payload).encode()


async def _serve_bare_aiohttp(stack: str, upstreams: dict[str, str]) -> int:
    from aiohttp import web

    client = _Client(stack.split("-")[1])

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        model, body = _rewrite(await request.read())
        url = upstreams[model] + request.path
        if b'"stream": true' in body:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            async for chunk in client.stream(url, body):
                await response.write(chunk)
            await response.write_eof()
            return response
        status, data = await client.post(url, body)
        return web.Response(status=status, body=data, content_type="application/json")

    runner = web.ServerRunner(web.Server(handle, handler_cancellation=True), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return int(runner.addresses[0][1])


async def _serve_starlette(stack: str, upstreams: dict[str, str]) -> int:
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    client = _Client(stack.split("-")[1])

    async def handle(request: Request) -> Response:
        model, body = _rewrite(await request.body())
        url = upstreams[model] + request.url.path
        if b'"stream": true' in body:
            return StreamingResponse(client.stream(url, body), media_type="text/event-stream")
        status, data = await client.post(url, body)
        return Response(data, status_code=status, media_type="application/json")

    app = Starlette(routes=[Route(CHAT, handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, loop="uvloop",
                            http="httptools", lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return int(sock.getsockname()[1])


class _Client:
    """The upstream client of a bare proxy: aiohttp or httpx, same two calls."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "aiohttp":
            self.aio = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        else:
            import httpx

            limits = httpx.Limits(max_connections=None, max_keepalive_connections=1000)
            self.httpx = httpx.AsyncClient(limits=limits, timeout=None)

    async def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if self.kind == "aiohttp":
            async with self.aio.post(url, data=body, headers=headers) as resp:
                return resp.status, await resp.read()
        r = await self.httpx.post(url, content=body, headers=headers)
        return r.status_code, r.content

    async def stream(self, url: str, body: bytes) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.kind == "aiohttp":
            async with self.aio.post(url, data=body, headers=headers) as resp:
                async for chunk in resp.content.iter_any():
                    yield chunk
            return
        async with self.httpx.stream("POST", url, content=body, headers=headers) as r:
            async for chunk in r.aiter_raw():
                yield chunk


# --------------------------------------------------------------------------------------
# The client side
# --------------------------------------------------------------------------------------
@dataclass
class Targets:
    direct: dict[str, str]
    gateway: str
    gateway_pid: int

    def url(self, side: str, model: str) -> str:
        return (self.direct[model] if side == "direct" else self.gateway) + CHAT


def _body(model: str, stream: bool = False) -> bytes:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 64,
    }
    if stream:
        payload["stream"] = True
    return json.dumps(payload).encode()


FAST_BODY = _body("fast")
HEADERS = {"Content-Type": "application/json"}


ERRORS: dict[str, int] = {}


async def one_request(session: aiohttp.ClientSession, url: str) -> float:
    """Latency of one request; failures are counted in ERRORS (by URL), not raised."""
    start = time.perf_counter()
    try:
        async with session.post(url, data=FAST_BODY, headers=HEADERS) as resp:
            await resp.read()
            ok = resp.status == 200
    except aiohttp.ClientError:
        ok = False
    if not ok:
        ERRORS[url] = ERRORS.get(url, 0) + 1
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000.0


@dataclass
class Side:
    direct: list[float] = field(default_factory=list)
    gateway: list[float] = field(default_factory=list)

    def add(self, side: str, values: list[float]) -> None:
        getattr(self, side).extend(values)

    def added(self, q: float) -> float:
        return pct(self.gateway, q) - pct(self.direct, q)


class CpuMeter:
    """The gateway process's CPU time (user + system) since the last reading.

    Less sensitive to other load on the machine than latency: the stack comparison in
    docs/decisions/0001-gateway-stack.md leans on it.
    """

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.last = self._now()

    def _now(self) -> float:
        times = self.proc.cpu_times()
        return float(times.user + times.system)

    def per(self, count: int) -> float:
        """Microseconds of gateway CPU per item since the previous call."""
        now = self._now()
        spent, self.last = now - self.last, now
        return spent / max(count, 1) * 1e6


async def phase_c1(session: aiohttp.ClientSession, t: Targets, n: int) -> Side:
    """Alternate one direct and one gateway request, n of each."""
    result = Side()
    for i in range(n):
        order = ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")
        for side in order:
            result.add(side, [await one_request(session, t.url(side, "fast"))])
    return result


async def burst(
    session: aiohttp.ClientSession, url: str, concurrency: int, per_worker: int
) -> list[float]:
    async def worker() -> list[float]:
        return [await one_request(session, url) for _ in range(per_worker)]

    rows = await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [v for row in rows for v in row]


async def phase_c64(session: aiohttp.ClientSession, t: Targets, rounds: int, per: int) -> Side:
    """Blocks of 64-way concurrency, direct and gateway alternating block by block."""
    result = Side()
    for r in range(rounds):
        order = ("direct", "gateway") if r % 2 == 0 else ("gateway", "direct")
        for side in order:
            result.add(side, await burst(session, t.url(side, "fast"), 64, per))
    return result


STAMP = re.compile(rb'"x_t":([0-9.e+-]+)')


async def one_stream(session: aiohttp.ClientSession, url: str) -> tuple[float, list[float]]:
    """(time to first chunk, each chunk's delay from the engine's write to its arrival here).

    The engine (`--stamp`) puts its perf_counter time in every chunk just before writing
    it; perf_counter is CLOCK_MONOTONIC, shared by all processes on the machine, so the
    delay is exactly the transport (direct) or transport + gateway, free of engine jitter.
    """
    start = time.perf_counter()
    first: float | None = None
    delays: list[float] = []
    async with session.post(url, data=_body("paced", stream=True), headers=HEADERS) as resp:
        buffer = b""
        async for data in resp.content.iter_any():
            now = time.perf_counter()
            buffer += data
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                stamp = STAMP.search(event)
                if stamp is None:
                    continue
                first = now - start if first is None else first
                delays.append(now - float(stamp.group(1)))
    if first is None:
        raise SystemExit(f"no stamped chunk from {url}: is the paced engine started with --stamp?")
    return first, delays


async def phase_stream(
    session: aiohttp.ClientSession, t: Targets, rounds: int, parallel: int
) -> tuple[Side, Side]:
    """`parallel` streams at a time, started ITL/parallel apart so that their chunks never
    arrive together: each chunk measures one stream's overhead, not a burst's queueing."""

    async def staggered(url: str, index: int) -> tuple[float, list[float]]:
        await asyncio.sleep(index * STREAM_ITL / parallel)
        return await one_stream(session, url)

    ttfc, late = Side(), Side()
    for r in range(rounds):
        order = ("direct", "gateway") if r % 2 == 0 else ("gateway", "direct")
        for side in order:
            url = t.url(side, "paced")
            rows = await asyncio.gather(*(staggered(url, i) for i in range(parallel)))
            ttfc.add(side, [first for first, _ in rows])
            late.add(side, [v for _, lates in rows for v in lates])
    return ttfc, late


async def open_loop(
    session: aiohttp.ClientSession, url: str, rate: float, seconds: float
) -> tuple[list[float], float]:
    """Send at `rate` per second regardless of answers; returns latencies and achieved rate."""
    count = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one_request(session, url)))
    latencies = list(await asyncio.gather(*tasks))
    return latencies, count / (loop.time() - start)


async def phase_rate(
    session: aiohttp.ClientSession, t: Targets, rates: list[int], seconds: float
) -> list[dict[str, float]]:
    steps: list[dict[str, float]] = []
    for i, rate in enumerate(rates):
        order = ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")
        got: dict[str, tuple[list[float], float]] = {}
        for side in order:
            got[side] = await open_loop(session, t.url(side, "fast"), rate, seconds)
        added = pct(got["gateway"][0], 99) - pct(got["direct"][0], 99)
        steps.append({"rate": rate, "achieved": got["gateway"][1], "added_p99_ms": added,
                      "direct_p99_ms": pct(got["direct"][0], 99)})  # fmt: skip
        print(f"  rate {rate:>5}/s: achieved {got['gateway'][1]:7.0f}/s, "
              f"added p99 {added:7.2f} ms", flush=True)  # fmt: skip
        # A step counts only if both sides kept up with the offered rate: when the client or
        # the engine saturates, both p99s explode and their difference means nothing.
        kept_up = min(got["gateway"][1], got["direct"][1]) >= 0.95 * rate
        steps[-1]["passed"] = kept_up and added < 10.0
        if not steps[-1]["passed"] and len(steps) >= 2 and not steps[-2]["passed"]:
            break  # two failing steps in a row: past the knee (one alone may be noise)
    return steps


async def phase_rss(
    session: aiohttp.ClientSession, t: Targets, total: int, seconds: float
) -> dict[str, float]:
    """Gateway RSS after a warm-up, then after `total` requests (or `seconds`, first)."""
    proc = psutil.Process(t.gateway_pid)
    url = t.url("gateway", "fast")
    await burst(session, url, 32, 100)
    before = proc.memory_info().rss
    done, deadline = 0, time.monotonic() + seconds
    while done < total and time.monotonic() < deadline:
        await burst(session, url, 32, 125)
        done += 32 * 125
    after = proc.memory_info().rss
    return {"requests": done, "rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20}


# --------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------
def start_gateway(stack: str, upstreams: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    argv = [sys.executable, __file__, "--serve", stack]
    for name, url in upstreams.items():
        argv += ["--upstream", f"{name}={url}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY port="):
        proc.kill()
        raise SystemExit(f"gateway process did not start: {line!r}")
    return proc, int(line.split("=", 1)[1])


async def run(args: argparse.Namespace, t: Targets) -> dict[str, Any]:
    q = args.quick
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await burst(session, t.url("direct", "fast"), 8, 50)  # warm both paths
        await burst(session, t.url("gateway", "fast"), 8, 50)
        cpu = CpuMeter(t.gateway_pid)
        c1 = await phase_c1(session, t, 300 if q else 2000)
        cpu_c1 = cpu.per(len(c1.gateway))
        c64 = await phase_c64(session, t, 2 if q else 6, 10 if q else 30)
        cpu_c64 = cpu.per(len(c64.gateway))
        ttfc, late = await phase_stream(session, t, 2 if q else 6, 4)
        cpu_chunk = cpu.per(len(late.gateway))
        rates = [250, 500, 1000] if q else [250, 500, 1000, 1500, 2000, 2500, 3000, 4000]
        # Memory before the rate steps: their overload bursts grow the heap once (Python
        # keeps freed arenas), which would hide growth per request.
        rss = await phase_rss(session, t, 10_000 if q else 100_000, args.rss_seconds)
        steps = await phase_rate(session, t, rates, 1.0 if q else 2.0)
    ok = [s["achieved"] for s in steps if s["passed"]]
    return {
        "stack": args.stack,
        "added_p50_ms": round(c1.added(50), 3),
        "added_p99_ms": round(c1.added(99), 3),
        "direct_p50_ms": round(pct(c1.direct, 50), 3),
        "direct_p99_ms": round(pct(c1.direct, 99), 3),
        "added_p50_ms_c64": round(c64.added(50), 3),
        "added_p99_ms_c64": round(c64.added(99), 3),
        "ttfc_added_p50_ms": round(ttfc.added(50), 3),
        "ttfc_added_p99_ms": round(ttfc.added(99), 3),
        "chunk_added_p50_ms": round(late.added(50), 3),
        "chunk_added_p99_ms": round(late.added(99), 3),
        "max_rps_p99_10ms": round(max(ok), 0) if ok else 0,
        "gateway_cpu_us_per_request_c1": round(cpu_c1, 1),
        "gateway_cpu_us_per_request_c64": round(cpu_c64, 1),
        "gateway_cpu_us_per_chunk": round(cpu_chunk, 1),
        "rss_requests": rss["requests"],
        "rss_before_mb": round(rss["rss_before_mb"], 1),
        "rss_after_mb": round(rss["rss_after_mb"], 1),
        "rss_growth_mb": round(rss["rss_after_mb"] - rss["rss_before_mb"], 1),
        "rate_steps": steps,
        "samples": {"c1": len(c1.direct), "c64": len(c64.direct), "chunks": len(late.direct)},
        "errors": dict(ERRORS),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def print_table(result: dict[str, Any]) -> None:
    rows = [
        ("non-streamed, c=1", "added p50 / p99 ms", result["added_p50_ms"], result["added_p99_ms"]),
        ("non-streamed, c=1", "direct p50 / p99 ms", result["direct_p50_ms"],
         result["direct_p99_ms"]),
        ("non-streamed, c=64", "added p50 / p99 ms", result["added_p50_ms_c64"],
         result["added_p99_ms_c64"]),
        ("64-chunk stream", "added TTFC p50 / p99 ms", result["ttfc_added_p50_ms"],
         result["ttfc_added_p99_ms"]),
        ("64-chunk stream", "added per-chunk p50 / p99 ms", result["chunk_added_p50_ms"],
         result["chunk_added_p99_ms"]),
        ("open loop", "max rate with added p99 < 10 ms", result["max_rps_p99_10ms"], ""),
        ("gateway CPU", "us per request c=1 / c=64", result["gateway_cpu_us_per_request_c1"],
         result["gateway_cpu_us_per_request_c64"]),
        ("gateway CPU", "us per stream chunk", result["gateway_cpu_us_per_chunk"], ""),
        (f"{result['rss_requests']} requests", "gateway RSS before / after MB",
         result["rss_before_mb"], result["rss_after_mb"]),
    ]  # fmt: skip
    print(f"\ngateway overhead ({result['stack']}), load avg {result['load_avg_1m']}")
    print(f"{'phase':<22} {'figure':<34} {'value':>10} {'':>10}")
    for phase, figure, a, b in rows:
        print(f"{phase:<22} {figure:<34} {a!s:>10} {b!s:>10}")


async def compare_one(t: Targets) -> dict[str, float]:
    """CPU per request and per chunk in the gateway process, and added c=1 latency."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await burst(session, t.url("gateway", "fast"), 4, 100)
        cpu = CpuMeter(t.gateway_pid)
        await burst(session, t.url("gateway", "fast"), 4, 1000)
        per_request = cpu.per(4000)
        _, late = await phase_stream(session, t, 2, 8)
        per_chunk = cpu.per(len(late.gateway))
        c1 = await phase_c1(session, t, 1000)
    return {"cpu_us_per_request": round(per_request, 1), "cpu_us_per_chunk": round(per_chunk, 1),
            "added_p50_ms": round(c1.added(50), 3), "added_p99_ms": round(c1.added(99), 3),
            "chunk_added_p50_ms": round(late.added(50), 3)}  # fmt: skip


def compare_main(rounds: int) -> int:
    """Every stack, `rounds` times, in turn (so drifting machine load spreads over all)."""
    import uvloop

    fast = start_scripted("--tokens", "16", model="fast")
    paced = start_scripted("--tokens", str(STREAM_CHUNKS), "--itl", str(STREAM_ITL), "--stamp",
                           model="paced")  # fmt: skip
    upstreams = {"fast": fast.base_url, "paced": paced.base_url}
    rows: dict[str, list[dict[str, float]]] = {s: [] for s in STACKS}
    try:
        for _ in range(rounds):
            for stack in STACKS:
                gateway, port = start_gateway(stack, upstreams)
                try:
                    t = Targets(upstreams, f"http://127.0.0.1:{port}", gateway.pid)
                    rows[stack].append(uvloop.run(compare_one(t)))
                finally:
                    gateway.terminate()
                    gateway.wait(10)
                print(stack, rows[stack][-1], flush=True)
    finally:
        fast.stop()
        paced.stop()
    medians = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in rows.items()}
    print(f"\n{'stack':<20}" + "".join(f"{k:>22}" for k in next(iter(medians.values()))))
    for stack, figures in medians.items():
        print(f"{stack:<20}" + "".join(f"{v:>22}" for v in figures.values()))
    print(json.dumps({"compare": medians, "rounds": rounds, "load_avg_1m": os.getloadavg()[0]}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=STACKS, default="corral")
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--rss-seconds", type=float, default=120.0,
                        help="time cap of the 100,000-request memory phase")  # fmt: skip
    parser.add_argument("--compare", type=int, metavar="ROUNDS", default=0,
                        help="compare all stacks: CPU per request and chunk")  # fmt: skip
    parser.add_argument("--serve", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_main(args.serve, dict(u.split("=", 1) for u in args.upstream))
        return 0
    if args.compare:
        return compare_main(args.compare)
    return asyncio_main(args)


def asyncio_main(args: argparse.Namespace) -> int:
    import uvloop

    fast = start_scripted("--tokens", "16", model="fast")
    paced = start_scripted("--tokens", str(STREAM_CHUNKS), "--itl", str(STREAM_ITL), "--stamp",
                           model="paced")  # fmt: skip
    engines: list[RunningEngine] = [fast, paced]
    upstreams = {"fast": fast.base_url, "paced": paced.base_url}
    gateway, port = start_gateway(args.stack, upstreams)
    try:
        targets = Targets(upstreams, f"http://127.0.0.1:{port}", gateway.pid)
        runner: Callable[[], Awaitable[dict[str, Any]]] = lambda: run(args, targets)  # noqa: E731
        result = uvloop.run(runner())
    finally:
        gateway.terminate()
        gateway.wait(10)
        for engine in engines:
            engine.stop()
    print_table(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
