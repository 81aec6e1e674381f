"""What the gateway sees of the fleet: replicas and whether each may take traffic.

The controller owns live state and publishes it through `FleetView`; the gateway only
reads it (it never starts engines). A replica is routable when its engine is ready and,
if its deployment has a verify gate, the gate has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from corral.config import Capabilities, Limits, Timeouts


@dataclass(frozen=True)
class Replica:
    """One running engine serving `served_name`. Several with one name are replicas."""

    id: str
    served_name: str
    base_url: str
    aliases: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    capabilities: Capabilities = field(default_factory=Capabilities)
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts | None = None
    engine: str = "vllm"
    routable: bool = False
    state: str = "stopped"
    gate: str = "none"


class FleetView(Protocol):
    """Read-only, cheap to call on every request."""

    def replicas(self) -> Sequence[Replica]: ...


@dataclass
class StaticFleet:
    """A fixed list of replicas: for tests, benchmarks and `corral gateway --upstream`."""

    items: list[Replica]

    def replicas(self) -> Sequence[Replica]:
        return self.items
