"""The fleet contract: what the gateway reads of the deployments the control plane runs.

Neither side owns it: the control plane (`corral.control`) publishes, the gateway
(`corral.gateway`) reads, and both import only this module. A deployment is published once
with its policy (names, capabilities, limits, timeouts) and its replicas under it; a
replica is one engine endpoint. A deployment with no routable replica is still published,
with the reason and the engine's last lines, so `/v1/models` can say why it is not
serving (`routable: false`).

    view = DeploymentView(Policy("m", aliases=("default",)), (Replica("m@1", "m", url),))
    fleet = StaticFleet([view])            # a fixed fleet: tests, benchmarks
    fleet.deployments()                    # read on every request: must be cheap

An on-demand deployment is published with no replica while it is stopped; the gateway
asks the control plane to start it through `OnDemand` (it never starts engines itself):

    await on_demand.ensure("m", progress)  # False: not on demand; raises when it can't start
    on_demand.hold("m"); ...; on_demand.release("m")   # in use: not idle, not evictable
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from corral.config import Capabilities, Limits, Timeouts

__all__ = [
    "DeploymentView",
    "FleetView",
    "OnDemand",
    "OnDemandStats",
    "Policy",
    "Progress",
    "Replica",
    "StaticFleet",
    "all_replicas",
    "group",
    "pairs",
]


@dataclass(frozen=True)
class Policy:
    """How the gateway treats every request to one deployment, whichever replica takes it."""

    served_name: str
    aliases: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    capabilities: Capabilities = field(default_factory=Capabilities)
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts | None = None
    engine: str = "vllm"
    upstream_model: str | None = None
    """The model name to send upstream when it isn't the served name (an endpoint's)."""


@dataclass(frozen=True)
class Replica:
    """One engine endpoint serving `served_name`; several with one name share the load.

    `api_key` is sent upstream (an unmanaged endpoint that wants one); never shown.
    """

    id: str
    served_name: str
    base_url: str
    routable: bool = False
    state: str = "stopped"
    gate: str = "none"
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DeploymentView:
    """A deployment as published: its policy, its replicas, and why it isn't serving.

    `state` is the control plane's word for the deployment (a supervisor's `starting`,
    `backoff`, `stopped`, ...; empty for a fixed fleet): with no replica it is all there
    is to show.
    """

    policy: Policy
    replicas: tuple[Replica, ...] = ()
    reason: str = ""
    tail: tuple[str, ...] = ()
    state: str = ""
    memory_gib: float | None = None
    on_demand: bool = False

    @property
    def name(self) -> str:
        return self.policy.served_name

    @property
    def routable(self) -> tuple[Replica, ...]:
        return tuple(r for r in self.replicas if r.routable)


class FleetView(Protocol):
    """Read-only and cheap: the gateway calls it on every request."""

    def deployments(self) -> Sequence[DeploymentView]: ...


Progress = Callable[[str], Awaitable[None]]
"""Told the start's progress while a request waits (e.g. "load_weights 3.1s")."""


@dataclass
class OnDemandStats:
    """Counts by deployment for /metrics: on-demand starts, idle stops, evictions, sleeps
    and wakes (vLLM sleep mode), and the seconds each request waited for a start (cold
    start through the gateway)."""

    starts: dict[str, int] = field(default_factory=dict)
    idle_stops: dict[str, int] = field(default_factory=dict)
    evictions: dict[str, int] = field(default_factory=dict)
    sleeps: dict[str, int] = field(default_factory=dict)
    wakes: dict[str, int] = field(default_factory=dict)
    cold_start_s: dict[str, list[float]] = field(default_factory=dict)

    def count(self, table: dict[str, int], name: str) -> None:
        table[name] = table.get(name, 0) + 1


class OnDemand(Protocol):
    """What the gateway may ask of the control plane for deployments started on demand."""

    async def ensure(self, name: str, progress: Progress | None = None) -> bool:
        """Start `name` (served name or alias) if it is on demand and stopped, and wait
        until it serves. False when it is not on demand; NoCapacity or EngineError when it
        can't start; TimeoutError past the configured bound."""
        ...

    def stats_now(self) -> OnDemandStats: ...

    def hold(self, name: str) -> None:
        """A request to `name` began (it is not idle, and not evicted under it)."""

    def release(self, name: str) -> None:
        """That request ended."""


def all_replicas(fleet: FleetView) -> list[Replica]:
    return [r for view in fleet.deployments() for r in view.replicas]


def pairs(fleet: FleetView) -> list[tuple[Policy, Replica]]:
    """Every replica with its deployment's policy (engine metrics, the console)."""
    return [(view.policy, r) for view in fleet.deployments() for r in view.replicas]


def group(entries: Iterable[tuple[Policy, Replica]]) -> list[DeploymentView]:
    """(policy, replica) pairs as deployments: replicas of one served name under the first
    policy given for it."""
    views: dict[str, DeploymentView] = {}
    for policy, replica in entries:
        known = views.get(policy.served_name)
        if known is None:
            views[policy.served_name] = DeploymentView(policy, (replica,))
        else:
            views[policy.served_name] = DeploymentView(known.policy, (*known.replicas, replica))
    return list(views.values())


@dataclass
class StaticFleet:
    """A fixed fleet: for tests, benchmarks and a gateway in front of known upstreams."""

    items: list[DeploymentView]

    @classmethod
    def of(cls, entries: Iterable[tuple[Policy, Replica]]) -> StaticFleet:
        return cls(group(entries))

    def deployments(self) -> Sequence[DeploymentView]:
        return self.items
