"""One deployment kept alive for `corral serve`: bring it up through the pipeline, watch it,
bring it back.

    idle ──desired──▶ starting ──ready──▶ ready ──death──▶ backoff ──▶ starting ...
                        │                   │
                        └─failed─▶ backoff  └─stopped by `corral stop`─▶ idle

- Starting is the pipeline's `bring_up`: it adopts the engine the ledger says runs (left
  by `corral deploy` or an earlier serve) instead of launching a second one.
- A death is any of: the leader exited; a member of the engine's process group vanished
  (SIGKILL of vLLM's API server leaves EngineCore and workers holding memory, so the pipe
  is no witness: the group is); the health probe failed twice in a row while ready. It
  is seen within `poll` + the probe's timeout (about 3 s). The whole group is ended (in
  flight clients get an error event from the gateway), the run recorded as failed, and
  the engine started again after a backoff of backoff_initial·2ⁿ s (≤ backoff_max),
  at most max_restarts times in a row; the count resets after `healthy_reset` s serving.
- A host that can't be reached (its SSH link down) is not a death: the state is
  `unreachable` (not routable), nothing is stopped or restarted, and when the link is back
  the same engine is watched and routed again (hosts/pool.py, issue 12).
- A run that someone else ended (`corral stop`: state `stopping`/`stopped`) is released,
  not restarted; the supervisor waits for a new live run in the ledger (`corral deploy`).
- A start that can't succeed by retrying (bad config, a taken port, docker missing) is
  not retried; it stays visible with its reason.

An on-demand deployment (`on_demand: true`) is not desired at first: `request_start`
(the fleet's, under its host's memory lock) wakes it, and `outcome` says how that start
ended to every request waiting on it. A failed on-demand start is not retried on its
own: the next request retries it, not before `retry_at` (the restart backoff).

Every decision that could race with another corral process is taken under the
deployment's lock, re-reading the ledger first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import httpx

from corral.config import Deployment
from corral.control.memory import PEAK_FACT, group_rss_gib
from corral.control.pipeline import Gate, Live, Services, bring_up, deployment_lock
from corral.engines.base import Fact
from corral.errors import (
    ConfigError,
    CorralError,
    EngineError,
    HostError,
    PortInUseError,
    RuntimeMissing,
)
from corral.fleet import DeploymentView, Policy, Replica
from corral.hosts.group import GroupRunning
from corral.hosts.pool import link_up, relink
from corral.ledger import runs
from corral.ledger.launches import live_run
from corral.recipes.prepare import Prepared
from corral.runtime.base import Runtime

__all__ = ["Supervisor", "policy_of"]

PERMANENT = (ConfigError, PortInUseError, RuntimeMissing)


def policy_of(dep: Deployment) -> Policy:
    return Policy(dep.name, tuple(dep.aliases), tuple(dep.roles), dep.capabilities,
                  dep.limits, dep.timeouts, dep.engine,
                  upstream_model=dep.endpoint_model)  # fmt: skip


@dataclass
class Supervisor:
    deployment: Deployment
    prepare: Callable[[], Prepared]
    services: Services
    runtime: Runtime
    http: httpx.AsyncClient
    gate: Gate | None = None
    poll: float = 0.5
    probe_timeout: float = 1.0
    api_key: str | None = None
    owns_http: bool = False
    desired: bool = True
    state: str = "idle"
    reason: str = ""
    tail: tuple[str, ...] = ()
    live: Live | None = None
    failures: int = 0
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: asyncio.Future[None] | None = None
    stopped_as: tuple[str, str] | None = None
    retry_at: float = 0.0
    phase: tuple[str, float] = ("", 0.0)
    peak_gib: float = 0.0
    planned_gib: float | None = None
    last_start_s: float | None = None

    @property
    def name(self) -> str:
        return self.deployment.name

    def view(self) -> DeploymentView:
        replicas: tuple[Replica, ...] = ()
        if self.live is not None:
            url = self.live.base_url
            replicas = (Replica(f"{self.name}@{url.split('://')[-1]}", self.name, url,
                                routable=self.state == "ready", state=self.state,
                                api_key=self.api_key),)  # fmt: skip
        policy = policy_of(self.deployment)
        if self.live is not None and self.live.prepared.launch.served_name != self.name:
            # the engine answers to the recipe's served name (the seed's GB10 run: the path)
            policy = replace(policy, upstream_model=self.live.prepared.launch.served_name)
        return DeploymentView(policy, replicas, self.reason, self.tail,
                              self.state, self.memory_gib(), self.deployment.on_demand)  # fmt: skip

    def memory_gib(self) -> float | None:
        """What it holds (or would need) on its host: the larger of the config's figure
        (else the planner's weights + KV) and the peak measured while it ran."""
        first = self.deployment.memory_gib or self.planned_gib
        figures = [f for f in (first, self.peak_gib) if f]
        return max(figures) if figures else None

    def plan_memory(self) -> None:
        """The planner's weights + KV cache for this deployment, once (blocking). Without a
        planner, or for a model it can't plan, nothing is known until it ran."""
        planner = self.services.planner
        if self.planned_gib is not None or planner is None:
            return
        try:
            figures = planner(self.prepare(), {})
        except CorralError:
            return
        parts = [figures.get(k, (0.0, ""))[0] for k in ("model_load_gib", "kv_cache_memory_gib")]
        total = sum(p for p in parts if isinstance(p, float))
        self.planned_gib = total or None

    @property
    def holds_memory(self) -> bool:
        """Counts against its host's budget; a sleeping engine counts in full (level 1
        keeps the weights in host memory, which on a unified-memory box is the GPU's)."""
        return self.state in {"starting", "ready", "backoff", "sleeping"}

    def request_start(self) -> asyncio.Future[None]:
        """Wake a stopped on-demand deployment; the future ends with its start."""
        if self.outcome is None or self.outcome.done():
            self.outcome = asyncio.get_running_loop().create_future()
            self.outcome.add_done_callback(_retrieved)
            self.state, self.reason, self.desired = "starting", "", True
            self.wake.set()
        return self.outcome

    def progress(self) -> str:
        name, since = self.phase
        return f"starting {name or 'launch'} {time.monotonic() - since:.1f}s"

    def _heard(self, kind: str, text: str) -> None:
        if kind == "phase":
            self.phase = (text, time.monotonic())
        self.services.say(kind, text)

    # ---- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: bring up, watch, bring back (see the module docstring)."""
        while True:
            if not self.desired:
                await self._wait_for_a_live_run()
            if not await self._start():
                if self.deployment.on_demand:
                    await self._after_failed_on_demand_start()
                elif self.state == "failed":
                    await self._idle_after_permanent_failure()
                else:
                    await self._backoff(self.reason)
                continue
            began = time.monotonic()
            ended = await self._watch()
            self.live = None
            if ended == "released":
                state, why = self.stopped_as or ("stopped", "stopped by corral stop")
                self.desired, self.state, self.reason, self.stopped_as = False, state, why, None
                continue
            if time.monotonic() - began >= self.deployment.restart.healthy_reset:
                self.failures = 0
            await self._backoff(ended)

    async def _start(self) -> bool:
        self.state, self.reason = "starting", ""
        self.phase, began = ("launch", time.monotonic()), time.monotonic()
        heard = replace(self.services, say=self._heard)
        try:
            prepared = await asyncio.to_thread(self.prepare)
            self.live = await bring_up(prepared, heard, self.runtime, gate=self.gate,
                                       http=self.http)  # fmt: skip
        except CorralError as exc:
            self._failed(exc)
            self._tell(exc)
            return False
        finally:
            self.settled.set()
        self.state, self.tail = "ready", ()
        self.last_start_s = time.monotonic() - began
        self.services.say("ready", f"serving at {self.live.base_url}")
        self._tell(None)
        return True

    def _tell(self, exc: CorralError | None) -> None:
        """Every request waiting on this start learns how it ended."""
        if self.outcome is not None and not self.outcome.done():
            if exc is None:
                self.outcome.set_result(None)
            else:
                self.outcome.set_exception(exc)

    async def _after_failed_on_demand_start(self) -> None:
        """Not retried on its own: the next request retries, after the backoff."""
        policy = self.deployment.restart
        delay = min(policy.backoff_initial * 2**self.failures, policy.backoff_max)
        self.failures += 1
        self.retry_at = time.monotonic() + delay
        self.state, self.desired = "failed", False
        await self._wait_for_a_live_run(keep_state=True)

    def _failed(self, exc: CorralError) -> None:
        self.live = None
        self.reason = f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message
        self.tail = tuple(exc.log_tail) if isinstance(exc, EngineError) else ()
        permanent = isinstance(exc, PERMANENT) or not isinstance(exc, EngineError)
        self.state = "failed" if permanent else "backoff"
        self.services.say("failed", exc.message)

    async def _idle_after_permanent_failure(self) -> None:
        """A start retrying can't fix: wait for a `corral deploy` to start it instead."""
        self.desired = False
        await self._wait_for_a_live_run(keep_state=True)

    async def _backoff(self, why: str) -> None:
        policy = self.deployment.restart
        if self.failures >= policy.max_restarts:
            self.state, self.desired = "failed", False
            self.reason = f"{why}; no restarts left (max_restarts {policy.max_restarts})"
            return
        delay = min(policy.backoff_initial * 2**self.failures, policy.backoff_max)
        self.failures += 1
        self.state = "backoff"
        self.reason = f"{why}; restarting in {delay:.0f} s"
        self.services.say("restart", self.reason)
        await asyncio.sleep(delay)

    async def _wait_for_a_live_run(self, *, keep_state: bool = False) -> None:
        pending = self.outcome is not None and not self.outcome.done()
        if not keep_state and self.state not in {"failed", "evicted", "stopped"}:
            self.state = "starting" if pending else "stopped"
        if not pending:
            self.wake.clear()
        while not self._someone_started_it() and not self.wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll)
        self.desired = True

    def _someone_started_it(self) -> bool:
        """A live run (`corral deploy` from another terminal); not the one a stop is still
        ending (state `stopping`: a vLLM engine takes seconds to go)."""
        run = live_run(self.services.ledger, self.name)
        return run is not None and run["state"] not in {"stopping", "stopped"}

    # ---- watching a live engine ---------------------------------------------------------

    async def _watch(self) -> str:
        """Until the engine dies ("...why") or someone else ends its run ("released")."""
        live = self.live
        assert live is not None
        members = set(await asyncio.to_thread(live.running.group))
        misses, recorded = 0, 0.0
        while True:
            await asyncio.sleep(self.poll)
            if self._released(live.run_id):
                return "released"
            if not await asyncio.to_thread(links_up, live):
                await self._ride_out(live)
                misses = 0
                continue
            try:
                # the group check (psutil, in a thread) and the probe run side by side
                death, answers = await asyncio.gather(
                    asyncio.to_thread(self._death, live, members), self._answers(live)
                )
                recorded = await self._measure_peak(live, recorded)  # inside: may hit the link
            except HostError:  # the link dropped while asking: ride it out now
                if not await asyncio.to_thread(links_up, live):
                    await self._ride_out(live)
                    misses = 0
                continue
            misses = 0 if answers else misses + 1
            if death is None and misses >= 2:
                death = "the engine stopped answering its health probe"
            if death is not None:
                return await self._ended(live, death)

    async def _ride_out(self, live: Live) -> None:
        """The engine's host is unreachable: unroutable, nothing restarted, until the link
        is back (then the same engine is watched, and routed, again)."""
        down = await asyncio.to_thread(lambda: [h.name for h in live.hosts if not link_up(h)])
        host = ", ".join(down) or live.host.name
        self.state, self.reason = "unreachable", f"host {host} is unreachable; waiting for it"
        self.services.say("host", self.reason)
        while not all(await asyncio.gather(*(asyncio.to_thread(relink, h) for h in live.hosts))):
            await asyncio.sleep(self.poll)
        self.state, self.reason = "ready", ""
        self.services.say("host", f"host {host} is back; routing to the same engine again")

    async def _measure_peak(self, live: Live, recorded: float) -> float:
        """Measure the engine group's memory; a new peak of this run (5 % above the last
        one recorded) becomes its `memory_peak_gib` fact, which `corral status` shows."""
        now = await asyncio.to_thread(self._measure, live)
        self.peak_gib = max(self.peak_gib, now)
        if now <= recorded * 1.05 or now < 0.01:
            return recorded
        await asyncio.to_thread(live.recorder.fact, Fact(PEAK_FACT, round(now, 2), "GiB"))
        return now

    @staticmethod
    def _measure(live: Live) -> float:
        return group_rss_gib(live.running.group())

    def _released(self, run_id: int) -> bool:
        state = runs.run_row(self.services.ledger, run_id).get("state")
        return state in {"stopping", "stopped"}

    @staticmethod
    def _death(live: Live, members: set[int]) -> str | None:
        if not live.running.alive():
            if isinstance(live.running, GroupRunning):  # a rank of a multi-node group
                return live.running.death()
            return f"the engine exited (code {live.running.exit_code()})"
        gone = members - set(live.running.group())
        if gone:
            return f"process {min(gone)} of the engine's group died"
        return None

    async def _answers(self, live: Live) -> bool:
        path = "/v1/models" if self.deployment.endpoint else "/health"
        try:
            reply = await self.http.get(f"{live.base_url}{path}", timeout=self.probe_timeout)
        except httpx.HTTPError:
            return False
        return reply.status_code == 200

    async def _ended(self, live: Live, why: str) -> str:
        """End the whole group and record the death; "released" when it was a stop that
        another corral process (`corral stop`, under the lock) made meanwhile."""
        if await asyncio.to_thread(self._settle, live, why):
            return "released"
        self.state = "backoff"
        self.services.say("crash", why)
        return why

    def _settle(self, live: Live, why: str) -> bool:
        with deployment_lock(self.services.home, self.name):
            row = runs.run_row(self.services.ledger, live.run_id)
            if row.get("state") in {"stopping", "stopped"}:
                return True
            live.running.stop(grace=5.0)
            if row.get("ended_at") is None:
                live.recorder.event("crash", why)
                live.recorder.ended("failed", live.running.exit_code())
            return False


def links_up(live: Live) -> bool:
    """Whether every host the engine runs on (each rank's, for a group) is reachable."""
    return all(link_up(host) for host in live.hosts)


def _retrieved(future: asyncio.Future[None]) -> None:
    """A start nobody waited for still ends quietly (no 'exception never retrieved')."""
    if not future.cancelled():
        future.exception()
