"""What the console may do to the fleet, behind one small protocol the gateway is given.

The console never starts or stops engines itself (the gateway must not): it calls a
`ConsoleActions` it was handed. `available(deployment)` names the actions this control
plane can take on that deployment now (the console shows only those buttons); `act` does
one and returns a sentence for the page, or raises `HttpError` (400 unknown or unavailable
action, 404 unknown deployment, 409 when the control plane refuses).

`ControllerActions` wires `stop` to the running `corral serve` controller. deploy, verify
and bench need the control plane that the CLI and a running `corral serve` share (being
reworked); until it is connected they are not offered.
"""

from __future__ import annotations

from typing import Protocol

from corral.controller.deployment import DeploymentRunner
from corral.controller.fleet import Controller
from corral.gateway.errors import HttpError

ACTIONS = ("deploy", "stop", "verify", "bench")


class ConsoleActions(Protocol):
    def available(self, deployment: str) -> frozenset[str]: ...

    async def act(self, action: str, deployment: str) -> str: ...


class NoActions:
    """A gateway without a control plane (`StaticFleet`, `corral gateway --upstream`)."""

    def available(self, deployment: str) -> frozenset[str]:  # noqa: ARG002
        return frozenset()

    async def act(self, action: str, deployment: str) -> str:  # noqa: ARG002
        raise unsupported(action)


def unsupported(action: str) -> HttpError:
    return HttpError(
        400, f"`{action}` is not available for this deployment from the console now",
        code="unsupported_action",
    )  # fmt: skip


class ControllerActions:
    """The running `corral serve` controller: stop one deployment's engine."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def available(self, deployment: str) -> frozenset[str]:
        runner = self._runner(deployment)
        return frozenset({"stop"}) if runner is not None and runner.process.running else frozenset()

    async def act(self, action: str, deployment: str) -> str:
        runner = self._runner(deployment)
        if runner is None:
            raise HttpError(
                404, f"no deployment `{deployment}` under this controller",
                code="unknown_deployment",
            )  # fmt: skip
        if action not in self.available(deployment):
            raise unsupported(action)
        await runner.stop()
        return f"stopped {deployment}"

    def _runner(self, deployment: str) -> DeploymentRunner | None:
        return next((r for r in self.controller.runners if r.dep.name == deployment), None)
