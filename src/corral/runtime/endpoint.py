"""An unmanaged endpoint behind the runtime protocol: corral routes to it, health-checks,
verifies, benches and meters it, and never starts or stops it.

`launch` and `adopt` only hand out a `Running` for it; `alive()` is always True (whether
it answers is the supervisor's health probe, the same as for any engine); `stop()` does
nothing and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from corral.config import DockerOptions
from corral.recipes.render import EngineLaunch
from corral.runtime.base import Command, Identity
from corral.runtime.host import Host

__all__ = ["EndpointRunning", "EndpointRuntime"]


@dataclass
class EndpointRunning:
    log_path: Path
    identity: Identity = field(default_factory=Identity)

    def alive(self) -> bool:
        return True

    def exit_code(self) -> int | None:
        return None

    def group(self) -> list[int]:
        return []

    def lines(self, keep_going: Callable[[], bool]) -> Iterator[str]:  # noqa: ARG002
        return iter(())

    def stop(self, grace: float = 0.0) -> bool:  # noqa: ARG002
        return False


@dataclass
class EndpointRuntime:
    host: Host
    kind: str = "endpoint"
    outlives_corral: bool = True

    def command(self, launch: EngineLaunch, options: DockerOptions) -> Command:  # noqa: ARG002
        return Command(argv=())

    def launch(self, command: Command, log_path: Path) -> EndpointRunning:  # noqa: ARG002
        return EndpointRunning(log_path)

    def adopt(self, identity: Identity, log_path: Path) -> EndpointRunning | None:  # noqa: ARG002
        return EndpointRunning(log_path)
