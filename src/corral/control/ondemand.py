"""Deployments started on the first request, stopped when idle, placed by host memory.

    demand = Demand(fleet.supervisors, config, services)   # the gateway's `OnDemand`
    await demand.ensure("m", progress)     # starts it (evicting idle ones) and waits
    demand.hold("m"); demand.release("m")  # a request in flight: not idle, not evicted
    await demand.run()                     # stops deployments idle past `idle_stop`

Placement (docs/decisions/0015-on-demand-placement.md): a deployment needs
`Supervisor.memory_gib()` on its host (the config's figure, or the peak measured while
it ran if larger). Deciding to start one and marking it `starting` happen under the
host's lock, and every `starting` or `ready` deployment counts against the host's
`memory_budget_gib`; so two requests racing for the last memory can't both start an
engine: the second sees the first's reservation. When it does not fit, idle unpinned
deployments on that host are stopped, least recently used (then lowest priority) first,
until it fits; if it can't fit even then, NoCapacity names what holds the memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx

from corral.config import CorralConfig, Deployment
from corral.control.memory import host_budget_gib
from corral.control.pipeline import Services, stop_deployment
from corral.control.supervisor import Supervisor
from corral.errors import EngineError, NoCapacity
from corral.fleet import OnDemandStats, Progress
from corral.ledger.db import Ledger
from corral.ledger.launches import runs_of
from corral.recipes.match import generic_for, matches_model, matching
from corral.recipes.schema import Recipe

__all__ = [
    "Demand",
    "Room",
    "choose_host",
    "expected_start_s",
    "idle_stop_warning",
    "idle_stop_warnings",
    "servable_hosts",
]

log = logging.getLogger("corral.gateway")

Clock = Callable[[], float]
StopEngine = Callable[[str, str], object]
"""Stop the engine of deployment `name`, recording `why` (blocking; run in a thread)."""
SLEEP_TIMEOUT = 120.0
"""Seconds a /sleep or /wake_up may take (level 1 copies the weights between memories)."""
Move = Callable[[Supervisor, str], Supervisor]
"""The stopped deployment's supervisor rebound to another host (the fleet's)."""


def recorded_start_s(dep: Deployment, ledger: Ledger | None) -> float | None:
    """The slowest start of `dep` the ledger recorded (launch to ready), if any."""
    if ledger is None:
        return None
    starts = [r["ready_at"] - r["started_at"] for r in runs_of(ledger, dep.name) if r["ready_at"]]
    return max(starts) if starts else None


def expected_start_s(dep: Deployment, recipes: Mapping[str, Recipe], hardware: str | None
                     ) -> float | None:  # fmt: skip
    """The start time its recipe states ("startup to ready"): the named recipe's, else the
    shortest among recipes for its model (on its host's hardware kind, when the config
    names one), so the warning is never a guess on the long side."""
    if dep.recipe is not None:
        candidates = [recipes[dep.recipe]] if dep.recipe in recipes else []
    else:
        candidates = [r for r in recipes.values() if dep.model and matches_model(r, dep.model)
                      and (hardware is None or hardware in r.match.hardware)]  # fmt: skip
    figures = [f for r in candidates if (f := _startup_figure(r)) is not None]
    return min(figures) if figures else None


def _startup_figure(recipe: Recipe) -> float | None:
    for figure in recipe.reference_figures:
        if figure.name.startswith("startup to ready") and figure.unit == "s":
            found = re.search(r"\d+(?:\.\d+)?", str(figure.value))
            if found:
                return float(found.group())
    return None


def idle_stop_warning(dep: Deployment, ledger: Ledger | None,
                      recipes: Mapping[str, Recipe] | None = None,
                      hardware: str | None = None) -> str | None:  # fmt: skip
    """An `idle_stop` shorter than the deployment's start (the slowest recorded in the
    ledger, else its recipe's figure): it would spend more time starting than serving."""
    if not dep.on_demand or dep.idle_stop is None:
        return None
    recorded = recorded_start_s(dep, ledger)
    start, source = recorded, "recorded in the ledger"
    if recorded is None and recipes is not None:
        start, source = expected_start_s(dep, recipes, hardware), "its recipe's figure"
    if start is None or start <= dep.idle_stop:
        return None
    return (f"deployments[{dep.name!r}].idle_stop {dep.idle_stop:.0f} s is shorter than "
            f"its start ({start:.0f} s, {source}): it may stop before it repays its "
            "start; raise idle_stop")  # fmt: skip


def servable_hosts(config: CorralConfig, dep: Deployment,
                   recipes: Mapping[str, Recipe]) -> list[str]:  # fmt: skip
    """The hosts of `dep.place_on` whose hardware kind its recipe matches (its named one,
    else any recipe for its model or the generic one). A host whose kind the config does
    not set is kept: the pipeline checks its detected kind when it starts there."""
    return [h for h in dep.place_on if _serves(dep, recipes, config.host(h).hardware)]


def _serves(dep: Deployment, recipes: Mapping[str, Recipe], kind: str | None) -> bool:
    if kind is None:
        return True
    if dep.recipe is not None:
        return dep.recipe in recipes and kind in recipes[dep.recipe].match.hardware
    known = dict(recipes)
    return bool(matching(known, dep.model or "", kind, dep.engine)) or (
        generic_for(known, kind, dep.engine) is not None)  # fmt: skip


def idle_stop_warnings(config: CorralConfig, ledger: Ledger | None,
                       recipes: Mapping[str, Recipe]) -> list[str]:  # fmt: skip
    """Every on-demand deployment whose `idle_stop` is shorter than its start."""
    found = []
    for dep in config.deployments:
        host = config.hosts.get(dep.host)
        warning = idle_stop_warning(dep, ledger, recipes, host.hardware if host else None)
        if warning is not None:
            found.append(warning)
    return found


@dataclass(frozen=True)
class Room:
    """One host as a placement sees it: its budget, what is held there, what the newcomer
    needs, and what its evictable deployments hold (in eviction order)."""

    host: str
    budget: float | None
    held: float
    need: float
    evictable: tuple[float, ...] = ()

    def evictions(self) -> int | None:
        """How many evictions make room (None: it can't fit even then)."""
        if self.budget is None:
            return 0
        held = self.held
        for count, freed in enumerate((0.0, *self.evictable)):
            held -= freed
            if held + self.need <= self.budget:
                return count
        return None

    def left(self, evictions: int) -> float:
        budget = float("inf") if self.budget is None else self.budget
        return budget - self.held + sum(self.evictable[:evictions]) - self.need


def choose_host(rooms: Sequence[Room]) -> str | None:
    """The host where it fits with the fewest evictions, then the most room left after,
    then the first given; None when it fits on none."""
    fits = [(n, -room.left(n), i, room.host) for i, room in enumerate(rooms)
            if (n := room.evictions()) is not None]  # fmt: skip
    return min(fits)[3] if fits else None


def sleep_level(sup: Supervisor) -> int | None:
    """The sleep level its recipe allows, when the recipe marks sleep mode safe for its
    hardware (GB10's recipes do not: vllm issue 50011); None: stop it instead."""
    if sup.live is None:
        return None
    mode = sup.live.prepared.choice.recipe.sleep_mode
    return mode.level if mode is not None and mode.safe else None


class Demand:
    """The control plane's side of `corral.fleet.OnDemand`."""

    def __init__(self, supervisors: Mapping[str, Supervisor], config: Callable[[], CorralConfig],
                 services: Services, *, stop: StopEngine | None = None,
                 move: Move | None = None, clock: Clock = time.monotonic,
                 poll: float = 1.0) -> None:  # fmt: skip
        self.supervisors = supervisors
        self.move = move
        self.config = config
        self.services = services
        self.stop_engine = stop or (lambda name, why: stop_deployment(name, services, reason=why))
        self.clock = clock
        self.poll = poll
        self.last_used: dict[str, float] = {}
        self.in_flight: dict[str, int] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.stats = OnDemandStats()
        self.candidates: dict[str, list[str]] = {}
        """Deployment → the hosts of its `place_on` whose hardware its recipe matches."""

    # ---- the gateway's questions ------------------------------------------------------

    def find(self, name: str) -> Supervisor | None:
        """The on-demand deployment a client's `name` (served name or alias) means."""
        for sup in self.supervisors.values():
            dep = sup.deployment
            if dep.on_demand and (dep.name == name or name in dep.aliases):
                return sup
        return None

    async def ensure(self, name: str, progress: Progress | None = None) -> bool:
        sup = self.find(name)
        if sup is None:
            return False
        self.last_used[sup.name] = self.clock()
        if sup.state == "ready":
            return True
        began = time.monotonic()
        sup, outcome = await self._claim_start(sup)
        await self._wait(sup, outcome, progress)
        if sup.last_start_s is not None:
            self.stats.cold_start_s.setdefault(sup.name, []).append(time.monotonic() - began)
        return True

    def stats_now(self) -> OnDemandStats:
        return self.stats

    def hold(self, name: str) -> None:
        self.in_flight[name] = self.in_flight.get(name, 0) + 1
        self.last_used[name] = self.clock()

    def release(self, name: str) -> None:
        self.in_flight[name] = max(0, self.in_flight.get(name, 0) - 1)
        self.last_used[name] = self.clock()

    # ---- starting: one start per deployment, one placement at a time per host -----------

    async def _claim_start(self, sup: Supervisor) -> tuple[Supervisor, asyncio.Future[None]]:
        """Join the start under way, or place it and start it (the supervisor may be a new
        one, on the host it was placed on). Under the locks of every host it may go to."""
        async with contextlib.AsyncExitStack() as held:
            for host in sorted({sup.deployment.host, *self._hosts_for(sup)}):
                await held.enter_async_context(self.locks.setdefault(host, asyncio.Lock()))
            sup = self.supervisors.get(sup.name, sup)  # a placement may have replaced it
            if sup.outcome is not None and not sup.outcome.done():
                return sup, sup.outcome  # join the start under way
            if sup.state == "ready":
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                done.set_result(None)
                return sup, done
            if sup.state == "sleeping" and await self._wake(sup):
                done = asyncio.get_running_loop().create_future()
                done.set_result(None)
                return sup, done
            self._check_backoff(sup)
            sup = await self._place(sup)
            await self._make_room(sup)
            self.stats.count(self.stats.starts, sup.name)
            self.services.say("on-demand", f"starting {sup.name} for a request")
            return sup, sup.request_start()

    def _hosts_for(self, sup: Supervisor) -> list[str]:
        return self.candidates.get(sup.name) or sup.deployment.place_on

    async def _place(self, sup: Supervisor) -> Supervisor:
        """With `place_on`, a stopped deployment goes to the host where it fits with the
        fewest evictions (then the most room left, then the order given)."""
        hosts = self._hosts_for(sup)
        if not hosts or self.move is None or sup.state in {"ready", "starting"}:
            return sup
        if sup.memory_gib() is None:
            await asyncio.to_thread(sup.plan_memory)
        best = choose_host([self._room(sup, h) for h in hosts])
        if best is None or best == sup.deployment.host:
            return sup
        log.info("on demand: %s placed on %s", sup.name, best)
        self.services.say("on-demand", f"placing {sup.name} on host {best}")
        return self.move(sup, best)

    def _room(self, sup: Supervisor, host: str) -> Room:
        holders = self._holders(sup, host)
        victims = [v.memory_gib() or 0.0 for v in self._victims(sup, host)]
        return Room(host, self.budget(host), sum(s.memory_gib() or 0.0 for s in holders),
                    sup.memory_gib() or 0.0, tuple(victims))  # fmt: skip

    def _check_backoff(self, sup: Supervisor) -> None:
        wait = sup.retry_at - time.monotonic()
        if sup.state == "failed" and wait > 0:
            raise EngineError(
                f"{sup.name} failed to start: {sup.reason}; next try in {wait:.0f} s",
                hint=f"`corral logs {sup.name}` shows the engine's log",
                log_tail=list(sup.tail),
            )

    async def _wait(self, sup: Supervisor, outcome: asyncio.Future[None],
                    progress: Progress | None) -> None:  # fmt: skip
        """Until the start ends (its error raised here too), telling `progress` each second;
        a client that goes away cancels its wait, never the start."""
        bound = self.config().serve.on_demand_start_timeout
        deadline = time.monotonic() + bound
        while not outcome.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sup.name} did not start within {bound:.0f} s")
            if progress is not None:
                await progress(sup.progress())
            await asyncio.wait([outcome], timeout=1.0)
        outcome.result()

    # ---- memory ------------------------------------------------------------------------

    def budget(self, host: str) -> float | None:
        return host_budget_gib(self.config().hosts.get(host))

    def _holders(self, sup: Supervisor, host: str | None = None) -> list[Supervisor]:
        host = host or sup.deployment.host
        return [s for s in self.supervisors.values() if s.name != sup.name
                and s.deployment.host == host and s.holds_memory]  # fmt: skip

    def _held(self, sup: Supervisor) -> float:
        return sum(s.memory_gib() or 0.0 for s in self._holders(sup))

    async def _make_room(self, sup: Supervisor) -> None:
        """Stop idle unpinned deployments on its host (LRU first) until `sup` fits."""
        budget = self.budget(sup.deployment.host)
        if budget is None:
            return
        if sup.memory_gib() is None:
            await asyncio.to_thread(sup.plan_memory)
        need = sup.memory_gib() or 0.0
        if need > budget:
            raise NoCapacity(f"{sup.name} needs {need:.1f} GiB but host "
                             f"{sup.deployment.host!r} has a budget of {budget:.1f} GiB",
                             hint="raise hosts.<host>.memory_budget_gib or lower the "
                             "deployment's memory (kv_cache_gib)")  # fmt: skip
        for victim in self._victims(sup):
            if self._held(sup) + need <= budget:
                return
            await self._stop(victim, "evicted", f"evicted to make room for {sup.name}")
        if self._held(sup) + need > budget:
            raise self._no_room(sup, need, budget)

    def _victims(self, sup: Supervisor, host: str | None = None) -> list[Supervisor]:
        idle = [s for s in self._holders(sup, host) if s.state in {"ready", "sleeping"} and
                not s.deployment.pinned and not self.in_flight.get(s.name)]  # fmt: skip
        return sorted(idle, key=lambda s: (self.last_used.get(s.name, 0.0),
                                           s.deployment.priority))  # fmt: skip

    def _no_room(self, sup: Supervisor, need: float, budget: float) -> NoCapacity:
        holders = ", ".join(self._describe(s) for s in self._holders(sup))
        return NoCapacity(
            f"cannot start {sup.name} (needs {need:.1f} GiB): host {sup.deployment.host!r} "
            f"has a budget of {budget:.1f} GiB and {holders} hold "
            f"{self._held(sup):.1f} GiB",
            hint="retry later, or pin fewer deployments on this host",
        )

    def _describe(self, sup: Supervisor) -> str:
        why = ("pinned" if sup.deployment.pinned else
               f"{self.in_flight.get(sup.name, 0)} requests in flight" if
               self.in_flight.get(sup.name) else sup.state)  # fmt: skip
        return f"{sup.name} ({sup.memory_gib() or 0.0:.1f} GiB, {why})"

    # ---- stopping ------------------------------------------------------------------------

    async def _stop(self, sup: Supervisor, state: str, why: str) -> None:
        """Stop its engine (recorded in the ledger with `why`) and wait until it is gone."""
        self.services.say(state, f"{sup.name}: {why}")
        log.info("on demand: %s %s: %s", sup.name, state, why)
        table = self.stats.evictions if state == "evicted" else self.stats.idle_stops
        self.stats.count(table, sup.name)
        sup.stopped_as = (state, why)
        with contextlib.suppress(EngineError):
            await asyncio.to_thread(self.stop_engine, sup.name, why)
        sup.state, sup.reason, sup.desired = state, why, False
        sup.live = None

    async def run(self) -> None:
        """Until cancelled: on-demand deployments idle past their `idle_stop` sleep (when
        their recipe marks sleep mode safe) or are stopped."""
        while True:
            await asyncio.sleep(self.poll)
            for sup in list(self.supervisors.values()):
                idle_for = self._idle_for(sup)
                if idle_for is not None:
                    why = f"idle for {idle_for:.0f} s (idle_stop {sup.deployment.idle_stop:.0f} s)"
                    if not await self._sleep(sup, why):
                        await self._stop(sup, "stopped", why)

    # ---- sleep mode (vLLM: POST /sleep?level=N, POST /wake_up) ------------------------------

    async def _sleep(self, sup: Supervisor, why: str) -> bool:
        """Put an idle engine to sleep; False when its recipe does not allow it or the
        engine refused (then it is stopped instead)."""
        live, level = sup.live, sleep_level(sup)
        if live is None or level is None:
            return False
        sup.state, sup.reason = "sleeping", f"{why}; sleeping (level {level})"  # unroutable now
        try:
            reply = await sup.http.post(f"{live.base_url}/sleep", params={"level": level},
                                        timeout=SLEEP_TIMEOUT)  # fmt: skip
            slept = reply.status_code == 200
        except httpx.HTTPError:
            slept = False
        if not slept:
            return False  # the caller stops it
        await asyncio.to_thread(live.recorder.event, "sleep", f"level {level}: {why}")
        self.stats.count(self.stats.sleeps, sup.name)
        self.services.say("sleep", f"{sup.name}: {why}; sleeping (level {level})")
        return True

    async def _wake(self, sup: Supervisor) -> bool:
        """Wake a sleeping engine for a request; one that won't wake is stopped (False:
        the caller starts it cold)."""
        live, began = sup.live, time.monotonic()
        assert live is not None
        try:
            reply = await sup.http.post(f"{live.base_url}/wake_up", timeout=SLEEP_TIMEOUT)
            woke = reply.status_code == 200
        except httpx.HTTPError:
            woke = False
        if not woke:
            await self._stop(sup, "stopped", "did not wake up from sleep mode; starting it cold")
            return False
        seconds = time.monotonic() - began
        await asyncio.to_thread(live.recorder.event, "wake", f"woke in {seconds:.2f} s")
        sup.state, sup.reason = "ready", ""
        self.stats.count(self.stats.wakes, sup.name)
        self.services.say("wake", f"{sup.name} woke in {seconds:.2f} s")
        return True

    def _idle_for(self, sup: Supervisor) -> float | None:
        dep = sup.deployment
        if not dep.on_demand or dep.idle_stop is None or sup.state != "ready":
            return None
        if self.in_flight.get(sup.name):
            return None
        idle_for = self.clock() - self.last_used.setdefault(sup.name, self.clock())
        return idle_for if idle_for > dep.idle_stop else None
