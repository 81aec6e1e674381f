"""The fleet `corral serve` runs: a supervisor per deployment, reconciled with the ledger.

    fleet = Fleet(config, services, supervisor_for)
    await fleet.start()          # a supervisor per deployment in the config
    await fleet.settled()        # every one of them ready or failed once
    fleet.deployments()          # the FleetView the gateway reads
    await fleet.stop("m")        # as `corral stop m`; returns once m's supervisor let go
    await fleet.close(stop_engines=False)

The ledger is the shared record between a running serve and the CLI (docs/decisions/
0002-one-control-plane.md): every `poll` seconds the fleet looks for live runs of
deployments it has no supervisor for (a `corral deploy NAME` from another terminal) and
adopts them; a supervisor releases a run that `corral stop` ended. Nothing else is
restarted when one deployment changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence

from corral.config import CorralConfig, Deployment
from corral.control.ondemand import Demand, servable_hosts
from corral.control.pipeline import Services, stop_deployment
from corral.control.supervisor import Supervisor
from corral.errors import CorralError, EngineError
from corral.fleet import DeploymentView
from corral.ledger.db import Ledger
from corral.ledger.launches import live_run
from corral.recipes.loader import home_recipes_dir, load_recipes
from corral.recipes.schema import Recipe

__all__ = ["Fleet", "port_conflicts"]

SupervisorFor = Callable[[CorralConfig, Deployment, bool], Supervisor]


def port_conflicts(deployments: Sequence[Deployment]) -> dict[str, str]:
    """Deployment name → why it is refused: a port another deployment on its host asks for."""
    owner: dict[tuple[str, int], str] = {}
    refused: dict[str, str] = {}
    for dep in deployments:
        if dep.port is None:
            continue
        key = (dep.host, dep.port)
        if key in owner:
            refused[dep.name] = (f"deployments {owner[key]!r} and {dep.name!r} both ask for "
                                 f"port {dep.port} on host {dep.host!r}")  # fmt: skip
        else:
            owner[key] = dep.name
    return refused


def live_names(ledger: Ledger) -> list[str]:
    """Deployments with a run that has not ended."""
    rows = ledger.conn.execute(
        "SELECT DISTINCT d.name FROM runs r JOIN deployments d ON d.id = r.deployment_id "
        "WHERE r.ended_at IS NULL"
    ).fetchall()
    return [row[0] for row in rows]


class Fleet:
    """Supervisors by deployment name; the gateway's FleetView."""

    def __init__(self, config: CorralConfig, services: Services, supervisor_for: SupervisorFor,
                 *, poll: float = 0.5, reload: Callable[[], CorralConfig] | None = None
                 ) -> None:  # fmt: skip
        self.config = config
        self.services = services
        self.supervisor_for = supervisor_for
        self.poll = poll
        self.reload = reload
        self.supervisors: dict[str, Supervisor] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None
        self.demand = Demand(self.supervisors, lambda: self.config, services, move=self._move)
        self._idler: asyncio.Task[None] | None = None

    def deployments(self) -> Sequence[DeploymentView]:
        return [s.view() for s in self.supervisors.values()]

    async def start(self) -> None:
        refused = port_conflicts(self.config.deployments)
        for dep in self.config.deployments:
            sup = self._add(dep, desired=dep.name not in refused and not dep.on_demand)
            if dep.on_demand and dep.name not in refused:
                self._waits_for_a_request(sup)
            if dep.name in refused:
                sup.state, sup.reason = "failed", refused[dep.name]
                sup.settled.set()
        self._poller = asyncio.create_task(self._adopt_new_runs())
        self._idler = asyncio.create_task(self.demand.run(), name="idle stops")

    def _waits_for_a_request(self, sup: Supervisor) -> None:
        """An on-demand deployment: stopped, and settled, until a request names it; with
        `place_on`, the hosts it may be placed on are those its recipe matches."""
        sup.desired, sup.state = False, "stopped"
        sup.reason = "on demand: starts on the first request"
        sup.settled.set()
        if sup.deployment.place_on:
            hosts = servable_hosts(self.config, sup.deployment, self._recipes())
            self.demand.candidates[sup.name] = hosts or [sup.deployment.host]
            dropped = sorted(set(sup.deployment.place_on) - set(hosts))
            if dropped:
                why = f"no recipe for {sup.name} matches the hardware of {', '.join(dropped)}"
                sup.services.say("placement", f"{why}: never placed there")

    def _recipes(self) -> dict[str, Recipe]:
        return load_recipes(self.config.recipes_dir, home_recipes_dir(self.services.home))

    def _move(self, sup: Supervisor, host: str) -> Supervisor:
        """A stopped on-demand deployment's supervisor, rebound to `host` (placement)."""
        self.tasks.pop(sup.name).cancel()
        dep = sup.deployment.model_copy(update={"host": host})
        deployments = [dep if d.name == dep.name else d for d in self.config.deployments]
        self.config = self.config.model_copy(update={"deployments": deployments})
        moved = self._add(dep, desired=False)
        moved.state, moved.reason, moved.planned_gib = "stopped", f"placed on {host}", (
            sup.planned_gib)  # fmt: skip
        moved.settled.set()
        return moved

    def _add(self, dep: Deployment, *, desired: bool) -> Supervisor:
        if dep not in self.config.deployments:
            deployments = [*self.config.deployments, dep]
            self.config = self.config.model_copy(update={"deployments": deployments})
        sup = self.supervisor_for(self.config, dep, desired)
        self.supervisors[dep.name] = sup
        self.tasks[dep.name] = asyncio.create_task(sup.run(), name=f"supervise {dep.name}")
        return sup

    async def settled(self) -> None:
        await asyncio.gather(*(s.settled.wait() for s in self.supervisors.values()))

    async def _adopt_new_runs(self) -> None:
        while True:
            for name in live_names(self.services.ledger):
                if name not in self.supervisors:
                    self._add(self._deployment(name), desired=True)
            await asyncio.sleep(self.poll)

    def _deployment(self, name: str) -> Deployment:
        """The deployment as the config file says now (it may have been added since serve
        started), else as its run recorded it."""
        configs = [self.config]
        if self.reload is not None:
            with contextlib.suppress(CorralError):
                configs.append(self.reload())
        for config in configs:
            for dep in config.deployments:
                if dep.name == name:
                    self.config = config
                    return dep
        recorded = live_run(self.services.ledger, name) or {}
        return Deployment.model_validate(json.loads(recorded.get("config_json") or "{}"))

    def live(self, name: str) -> bool | None:
        """Whether `name` has an engine up now; None for a deployment this fleet doesn't run."""
        supervisor = self.supervisors.get(name)
        return None if supervisor is None else supervisor.live is not None

    async def stop(self, name: str, *, reason: str = "stopped", timeout: float = 10.0) -> None:
        """Stop one deployment's engine as `corral stop` does (under its lock, the run
        recorded `stopped`), then wait until its supervisor has released it, so what the
        gateway reads next says `stopped`. EngineError when it has no running engine."""
        await asyncio.to_thread(stop_deployment, name, self.services, reason=reason)
        supervisor = self.supervisors.get(name)
        deadline = asyncio.get_running_loop().time() + timeout
        while supervisor is not None and supervisor.live is not None:
            if asyncio.get_running_loop().time() > deadline:
                raise EngineError(f"{name!r} was stopped but its supervisor still holds it")
            await asyncio.sleep(self.poll / 5)

    async def close(self, *, stop_engines: bool) -> None:
        """Stop supervising; with `stop_engines`, stop every engine this fleet serves."""
        tasks = [t for t in (self._poller, self._idler, *self.tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if stop_engines:
            await asyncio.gather(*(self._stop(name) for name in self.supervisors))
        for sup in self.supervisors.values():
            if sup.owns_http:
                await sup.http.aclose()

    async def _stop(self, name: str) -> None:
        with contextlib.suppress(EngineError):
            await asyncio.to_thread(stop_deployment, name, self.services,
                                    reason="corral serve stopped")  # fmt: skip
