"""The controller: runs a CorralConfig's deployments and publishes them as a FleetView.

    controller = Controller(config, deps_for)    # deps_for(deployment) → RunnerDeps
    await controller.start_all()                 # every deployment routable, or EngineError
    controller.replicas()                        # what the gateway reads, on every request
    await controller.stop_all()                  # every engine group gone

`start_all` starts the deployments concurrently and waits for all of them; if one fails,
the others are stopped too and the first failure is raised (a fleet that is half up
would answer 404 for models the user expects). Local processes only, for now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from corral.config import CorralConfig, Deployment
from corral.controller.deployment import DeploymentRunner, RunnerDeps
from corral.controller.view import Replica
from corral.errors import ConfigError


class Controller:
    """Desired deployments → running, routable replicas (a FleetView)."""

    def __init__(self, config: CorralConfig, deps_for: Callable[[Deployment], RunnerDeps]) -> None:
        self.config = config
        self.deps_for = deps_for
        self.runners: list[DeploymentRunner] = []

    def replicas(self) -> Sequence[Replica]:
        return [runner.replica() for runner in self.runners]

    async def start_all(self) -> None:
        """Start every deployment; returns when all are routable. Stops all on a failure."""
        local = [d for d in self.config.deployments if d.host == "local"]
        if not local:
            raise ConfigError(
                "the configuration has no local deployments to serve",
                hint="add a deployment with `host: local` (the default), or run without "
                "--config for the default model",
            )
        try:
            for dep in local:
                self.runners.append(DeploymentRunner(dep, self.deps_for(dep)))
            results = await asyncio.gather(
                *(runner.start() for runner in self.runners), return_exceptions=True
            )
        except BaseException:
            await self.stop_all()
            raise
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop_all()
            raise errors[0]

    async def stop_all(self) -> None:
        """Stop every engine; returns when every process group is gone."""
        await asyncio.gather(*(runner.stop() for runner in self.runners))
