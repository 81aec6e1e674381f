"""What the console may do to the fleet, behind one small protocol the gateway is given.

The console never starts or stops engines itself (the gateway must not): it calls a
`ConsoleActions` it was handed. `available()` names the actions this control plane
supports now (the console shows only those buttons); `act` does one and returns a
sentence for the page, or raises `HttpError` (400 unknown action, 404 unknown deployment,
409 when the control plane refuses).

`ControllerActions` wires `stop` to the running `corral serve` controller. deploy, verify
and bench need the control plane that the CLI and a running `corral serve` share (being
reworked); until it is connected they are not offered.
"""

from __future__ import annotations

from typing import Protocol

from corral.controller.fleet import Controller
from corral.gateway.errors import HttpError

ACTIONS = ("deploy", "stop", "verify", "bench")


class ConsoleActions(Protocol):
    def available(self) -> frozenset[str]: ...

    async def act(self, action: str, deployment: str) -> str: ...


class NoActions:
    """A gateway without a control plane (`StaticFleet`, `corral gateway --upstream`)."""

    def available(self) -> frozenset[str]:
        return frozenset()

    async def act(self, action: str, deployment: str) -> str:  # noqa: ARG002
        raise unsupported(action)


def unsupported(action: str) -> HttpError:
    return HttpError(
        400, f"`{action}` is not available from this gateway's console", code="unsupported_action"
    )


class ControllerActions:
    """The running `corral serve` controller: stop one deployment's engine."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def available(self) -> frozenset[str]:
        return frozenset({"stop"})

    async def act(self, action: str, deployment: str) -> str:
        if action not in self.available():
            raise unsupported(action)
        runner = next((r for r in self.controller.runners if r.dep.name == deployment), None)
        if runner is None:
            raise HttpError(
                404, f"no deployment `{deployment}` in this fleet", code="unknown_deployment"
            )
        if not runner.process.running:
            raise HttpError(409, f"`{deployment}` is not running", code="not_running")
        await runner.stop()
        return f"stopped {deployment}"
