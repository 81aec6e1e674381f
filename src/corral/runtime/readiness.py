"""Readiness: an engine is ready when it answers like a server that can generate.

Three steps, in order, polled until `timeout`: `/health` answers 200; `/v1/models` lists
the served name; one real one-token generation (`/v1/completions`, max_tokens 1)
succeeds. Health alone is not enough: vLLM answers /health before the first request can
run on some versions, and a wrong served name only shows in the model list.

The caller passes `alive()` so that an engine which exits during startup is reported at
once instead of after the timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from corral.errors import EngineError


class NotReady(EngineError):
    """The engine exited, or did not pass readiness in time; `step` says where it stopped."""

    def __init__(self, message: str, *, step: str, exited: bool) -> None:
        super().__init__(message)
        self.step = step
        self.exited = exited


@dataclass(frozen=True)
class Probe:
    base_url: str
    served_name: str
    timeout: float = 600.0
    interval: float = 0.5
    health_path: str = "/health"


async def wait_ready(probe: Probe, client: httpx.AsyncClient, alive: Callable[[], bool]) -> float:
    """Poll until ready; the seconds it took. NotReady on exit or timeout."""
    start = time.monotonic()
    deadline = start + probe.timeout
    for step, check in (("health", _health), ("models", _models), ("generate", _generate)):
        await _until(step, check, client, probe, deadline=deadline, alive=alive)
    return time.monotonic() - start


Check = Callable[[Probe, httpx.AsyncClient], Awaitable[bool | str]]


async def _until(
    step: str,
    check: Check,
    client: httpx.AsyncClient,
    probe: Probe,
    *,
    deadline: float,
    alive: Callable[[], bool],
) -> None:
    last = "no answer yet"
    while True:
        if not alive():
            raise NotReady(f"the engine exited during startup (at readiness step {step})",
                           step=step, exited=True)  # fmt: skip
        try:
            outcome = await check(probe, client)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        if outcome is True:
            return
        last = str(outcome)
        if time.monotonic() >= deadline:
            raise NotReady(
                f"the engine was not ready after {probe.timeout:.0f} s "
                f"(readiness step {step}: {last})",
                step=step,
                exited=False,
            )
        await asyncio.sleep(probe.interval)


async def _health(probe: Probe, client: httpx.AsyncClient) -> bool | str:
    reply = await client.get(f"{probe.base_url}{probe.health_path}", timeout=5.0)
    if reply.status_code == 200:
        return True
    return f"{probe.health_path} answered {reply.status_code}"


async def _models(probe: Probe, client: httpx.AsyncClient) -> bool | str:
    reply = await client.get(f"{probe.base_url}/v1/models", timeout=5.0)
    if reply.status_code != 200:
        return f"/v1/models answered {reply.status_code}"
    names = [m.get("id") for m in reply.json().get("data", [])]
    if probe.served_name in names:
        return True
    return f"/v1/models lists {names}, not {probe.served_name!r}"


async def _generate(probe: Probe, client: httpx.AsyncClient) -> bool | str:
    body = {"model": probe.served_name, "prompt": "Hello", "max_tokens": 1}
    reply = await client.post(f"{probe.base_url}/v1/completions", json=body, timeout=120.0)
    if reply.status_code != 200:
        return f"a one-token generation answered {reply.status_code}: {reply.text[:200]}"
    choices = reply.json().get("choices") or []
    return True if choices else "a one-token generation returned no choices"
