"""A gateway (and a fleet) running on an event loop in a thread of its own, so that
synchronous clients (Playwright's sync API, promtool, Prometheus) can drive it from tests.

    with LiveGateway(build) as live:       # build(loop-side) → (GatewayServer, cleanup)
        live.url                           # http://127.0.0.1:PORT
        live.call(coro_fn)                 # run a coroutine on the gateway's loop

Everything started in `build` is stopped by its cleanup before the thread ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from corral.fleet import DeploymentView, FleetView
from corral.gateway import GatewayServer

T = TypeVar("T")
Cleanup = Callable[[], Awaitable[None]]
Build = Callable[[], Awaitable[tuple[GatewayServer, Cleanup]]]


@dataclass
class Fleets:
    """Several fleet views as one (a serve's fleet plus static deployments)."""

    parts: Sequence[FleetView]

    def deployments(self) -> Sequence[DeploymentView]:
        return [view for part in self.parts for view in part.deployments()]


class LiveGateway:
    def __init__(self, build: Build, *, start_timeout: float = 120.0) -> None:
        self.build = build
        self.start_timeout = start_timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: GatewayServer | None = None
        self._cleanup: Cleanup | None = None

    def __enter__(self) -> LiveGateway:
        self.thread.start()
        self.server, self._cleanup = self.call(self.build, timeout=self.start_timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._cleanup is not None:
                self.call(self._cleanup, timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def call(self, work: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(_run(work), self.loop)
        result: T = future.result(timeout)
        return result


async def _run(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
