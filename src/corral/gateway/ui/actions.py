"""What the console may do to the fleet, behind one small protocol the gateway is given.

The console never starts or stops engines itself (the gateway must not): it calls a
`ConsoleActions` it was handed. `available(deployment)` names the actions this control
plane can take on that deployment now (the console shows only those buttons); `act` does
one and returns a sentence for the page, or raises `HttpError` (400 unknown or unavailable
action, 404 unknown deployment, 409 when the control plane refuses).

`FleetActions` wires `stop` to the fleet a running `corral serve` supervises (the same
stop as `corral stop`: the run is recorded `stopped` and the supervisor lets it go, not
restarting it). deploy, verify and bench are not offered yet: the fleet starts a stopped
deployment only when a `corral deploy` records a live run, and verify and bench run from
the CLI against the gateway.
"""

from __future__ import annotations

from typing import Protocol

from corral.errors import EngineError
from corral.gateway.errors import HttpError

ACTIONS = ("deploy", "stop", "verify", "bench")


class ConsoleActions(Protocol):
    def available(self, deployment: str) -> frozenset[str]: ...

    async def act(self, action: str, deployment: str) -> str: ...


class Stoppable(Protocol):
    """What the console needs of a control plane (`corral.control.fleet.Fleet` is one;
    the gateway imports only this shape, not the control plane)."""

    def live(self, deployment: str) -> bool | None:
        """Whether it has a running engine now; None for a deployment it doesn't run."""
        ...

    async def stop(self, name: str, *, reason: str) -> None: ...


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


class FleetActions:
    """The fleet a running `corral serve` supervises: stop one deployment's engine."""

    def __init__(self, fleet: Stoppable) -> None:
        self.fleet = fleet

    def available(self, deployment: str) -> frozenset[str]:
        return frozenset({"stop"}) if self.fleet.live(deployment) else frozenset()

    async def act(self, action: str, deployment: str) -> str:
        if self.fleet.live(deployment) is None:
            raise HttpError(
                404, f"no deployment `{deployment}` in this serve's fleet",
                code="unknown_deployment",
            )  # fmt: skip
        if action not in self.available(deployment):
            raise unsupported(action)
        try:
            await self.fleet.stop(deployment, reason="stopped from the console")
        except EngineError as exc:
            raise HttpError(409, exc.message, code="refused") from None
        return f"stopped {deployment}"
