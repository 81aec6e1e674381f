"""The load generator: asyncio, one aiohttp connection pool sized to the load.

Two shapes of load, each preceded by warm-up requests that are recorded but excluded:

- **concurrency** (closed loop): `level` workers, each sends its next request as soon as
  its previous one ends. The pool holds exactly `level` connections, so no request ever
  waits for a connection.
- **rate** (open loop): requests arrive as a Poisson process of `rate` per second from a
  seeded generator; each is sent at its arrival time, however many are in flight
  (`max_concurrency` caps that, and the wait then shows as queue delay).

The client proves it is not the bottleneck with two figures it reports: queue delay
(sent − scheduled, per request) and event-loop lag (how late a 10 ms ticker wakes up).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from corral.bench.client import Clock, Endpoint, stream_request, wire_trace
from corral.bench.metrics import distribution
from corral.bench.timeline import Timeline

OnDone = Callable[[Timeline], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    payload: dict[str, Any]
    max_tokens: int
    prompt_tokens: int | None = None


@dataclass
class LevelRun:
    """Everything recorded for one load level."""

    label: str
    timelines: list[Timeline]
    loop_lag: dict[str, float] = field(default_factory=dict)
    peak_in_flight: int = 0


def make_session(
    pool: int, timeout: float = 3600.0, traces: Sequence[aiohttp.TraceConfig] = ()
) -> aiohttp.ClientSession:
    """A session whose pool holds `pool` connections (0 = unbounded, for open-loop load)."""
    connector = aiohttp.TCPConnector(
        limit=pool, limit_per_host=pool, keepalive_timeout=60, force_close=False
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=30),
        trace_configs=[wire_trace(), *traces],
    )


class LagMonitor:
    """Measures event-loop lag: a busy client wakes a 10 ms ticker late."""

    def __init__(self, clock: Clock, period: float = 0.01) -> None:
        self.clock, self.period = clock, period
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            due = self.clock() + self.period
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, self.clock() - due))

    def __enter__(self) -> LagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


class InFlight:
    """Counts requests on the wire and remembers the peak."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    async def run(self, job: Awaitable[Timeline]) -> Timeline:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await job
        finally:
            self.now -= 1


@dataclass
class Runner:
    """Sends requests to one endpoint; `on_done` is called for every finished request."""

    endpoint: Endpoint
    clock: Clock = time.perf_counter
    on_done: OnDone | None = None
    keep_text: bool = False

    async def _one(
        self, session: aiohttp.ClientSession, req: Request, scheduled: float, warmup: bool
    ) -> Timeline:
        tl = Timeline(
            scheduled=scheduled,
            warmup=warmup,
            max_tokens=req.max_tokens,
            prompt_tokens_sent=req.prompt_tokens,
        )
        await stream_request(
            session, self.endpoint, req.payload, tl, clock=self.clock, keep_text=self.keep_text
        )
        if self.on_done is not None:
            self.on_done(tl)
        return tl

    async def concurrency(
        self, level: int, requests: Sequence[Request], warmup: int = 0, ramp: float = 0.0
    ) -> LevelRun:
        """Closed loop at `level`. The first `warmup` requests sent are excluded; the rest
        follow in the same loop, so measurement starts at full load, not with a burst.
        `ramp` spreads the workers' first sends over that many seconds (else all at once)."""
        flight = InFlight()
        queue = deque(enumerate(requests))
        out: list[Timeline] = []

        async def worker(session: aiohttp.ClientSession, slot: int) -> None:
            if ramp:
                await asyncio.sleep(ramp * slot / level)
            while queue:
                index, req = queue.popleft()
                # scheduled = the moment the slot freed: any delay before the send is the
                # client's own (serialising JSON, a busy loop).
                tl = await flight.run(self._one(session, req, self.clock(), index < warmup))
                out.append(tl)

        async with make_session(level) as session:
            with LagMonitor(self.clock) as lag:
                workers = min(level, len(requests))
                await asyncio.gather(*(worker(session, i) for i in range(workers)))
        return LevelRun(f"c={level}", out, distribution(lag.lags), flight.peak)

    async def rate(
        self,
        rate: float,
        requests: Sequence[Request],
        warmup: int = 0,
        *,
        max_concurrency: int = 0,
        seed: int = 0,
    ) -> LevelRun:
        """Open loop: Poisson arrivals at `rate`/s; all requests share one schedule."""
        rng = random.Random(seed)  # noqa: S311  (reproducible load, not secrets)
        offsets, due = [], 0.0
        for _ in requests:
            due += rng.expovariate(rate)
            offsets.append(due)
        run = await self.schedule(offsets, requests, warmup, max_concurrency=max_concurrency)
        run.label = f"rate={rate:g}"
        return run

    async def schedule(
        self,
        offsets: Sequence[float],
        requests: Sequence[Request],
        warmup: int = 0,
        *,
        max_concurrency: int = 0,
    ) -> LevelRun:
        """Open loop: request i sent `offsets[i]` seconds after the start (a recorded
        trace replayed, or Poisson arrivals), however many are in flight."""
        flight = InFlight()
        gate = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        async with make_session(max_concurrency) as session:
            with LagMonitor(self.clock) as lag:
                start, tasks = self.clock(), []
                for index, (offset, req) in enumerate(zip(offsets, requests, strict=True)):
                    due = start + offset
                    await _sleep_until(due, self.clock)
                    job = self._gated(
                        session, req, due, warmup=index < warmup, gate=gate, flight=flight
                    )
                    tasks.append(asyncio.ensure_future(job))
                done = list(await asyncio.gather(*tasks))
        return LevelRun("schedule", done, distribution(lag.lags), flight.peak)

    async def _gated(
        self,
        session: aiohttp.ClientSession,
        req: Request,
        due: float,
        *,
        warmup: bool,
        gate: asyncio.Semaphore | None,
        flight: InFlight,
    ) -> Timeline:
        if gate is None:
            return await flight.run(self._one(session, req, due, warmup))
        async with gate:
            return await flight.run(self._one(session, req, due, warmup))


def run_async(job: Coroutine[Any, Any, T]) -> T:
    """Run `job` on uvloop when it is installed (a third of the client CPU per chunk of
    asyncio's default loop, measured in docs/bench.md), else on the default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with vLLM and uvicorn[standard]
        return asyncio.run(job)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(job)


async def _sleep_until(due: float, clock: Clock) -> None:
    delay = due - clock()
    if delay > 0:
        await asyncio.sleep(delay)
