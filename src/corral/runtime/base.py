"""The runtime protocol: how the control plane launches, finds again, watches and stops an
engine, whatever runs it. A runtime hands out lines and exit codes; it knows no engine's
log format (parsing is the control plane's recorder).

    runtime = runtime_for("detached", LocalHost())
    command = runtime.command(launch, docker_options)      # exactly what will run
    running = runtime.launch(command, log_path)            # returns once it exists
    again = runtime.adopt(running.identity, log_path)      # from another corral process
    for line in running.lines(keep_going): ...             # output from the start
    running.alive(); running.exit_code(); running.group(); running.stop(grace=15)

Implementations: `runtime.process.SupervisedRuntime` (a child that dies with corral),
`runtime.process.DetachedRuntime` (outlives corral, like `docker run -d`) and
`runtime.docker.DockerRuntime`. Each takes the `Host` (runtime/host.py) it runs on.
All calls block; async code runs them in a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from corral.config import DockerOptions
from corral.recipes.render import EngineLaunch
from corral.runtime.host import Host

__all__ = ["Command", "Identity", "Running", "Runtime"]


@dataclass(frozen=True)
class Identity:
    """How a launched engine is found again (the ledger's run_launches row)."""

    pid: int | None = None
    pid_started_at: float | None = None
    container: str | None = None
    container_id: str | None = None


@dataclass(frozen=True)
class Command:
    """What a runtime will run: argv, environment additions, and the container's name.

    `breaks`: argv positions a printed command starts a new line at (docker's image).
    `env` may hold secrets: it never goes on a command line (docker gets `-e KEY` and
    the value through its own environment).
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    container: str | None = None
    breaks: tuple[int, ...] = ()
    env_on_line: bool = True
    """Whether a printed command shows `KEY=value` before the argv (a process's env)."""


class Running(Protocol):
    """One launched engine."""

    identity: Identity
    log_path: Path

    def alive(self) -> bool: ...

    def exit_code(self) -> int | None:
        """The exit code once it ended and the code is known (None: running or unknown)."""
        ...

    def group(self) -> list[int]:
        """The live processes that make up the engine (one for a container)."""
        ...

    def lines(self, keep_going: Callable[[], bool]) -> Iterator[str]:
        """Its output from the start; ends when it ends or `keep_going()` is False."""
        ...

    def stop(self, grace: float = 15.0) -> bool:
        """End it (all of it); False if it was already gone."""
        ...


class Runtime(Protocol):
    kind: str
    host: Host
    outlives_corral: bool

    def command(self, launch: EngineLaunch, options: DockerOptions) -> Command: ...

    def launch(self, command: Command, log_path: Path) -> Running: ...

    def adopt(self, identity: Identity, log_path: Path) -> Running | None:
        """The engine recorded as `identity` if it still runs, else None."""
        ...
