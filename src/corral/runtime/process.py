"""An engine as a local process group: supervised (dies with corral) or detached.

    SupervisedRuntime  a child of corral in its own session; PR_SET_PDEATHSIG=SIGTERM, so
                       when corral dies (even by SIGKILL) the engine is told to stop.
                       `corral serve --stop-engines-on-exit` (the default config) uses it.
    DetachedRuntime    a new session that outlives corral (`corral deploy`, and `corral
                       serve` with a config): found again by pid checked against its start
                       time, so a reused pid is never taken for it.

Both write the engine's output (stdout and stderr together) to a per-run log file, which
`lines()` follows from its start. `stop()` ends the whole group: SIGTERM, SIGKILL after
`grace`, then SIGKILL for any member that outlived its leader (vLLM's EngineCore and
workers outlive a killed API server). `group()` lists the members, so the supervisor can
tell that one of them died.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from corral.config import DockerOptions
from corral.recipes.render import EngineLaunch
from corral.runtime.base import Command, Identity
from corral.runtime.host import Host

__all__ = ["DetachedRuntime", "ProcessRunning", "SupervisedRuntime", "display_line"]

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def display_line(raw: str) -> str:
    """A line as a person should see it: no colour codes, a progress bar's last frame."""
    frames = [f for f in ANSI.sub("", raw).rstrip("\n").split("\r") if f.strip()]
    return frames[-1] if frames else ""


@dataclass
class ProcessRunning:
    """A process group on `host`, by pid and start time."""

    host: Host
    identity: Identity
    log_path: Path

    @property
    def pid(self) -> int:
        assert self.identity.pid is not None
        return self.identity.pid

    def alive(self) -> bool:
        return self.host.alive(self.pid, self.identity.pid_started_at)

    def exit_code(self) -> int | None:
        return self.host.exit_code(self.pid)

    def group(self) -> list[int]:
        return self.host.group(self.pid) if self.alive() or self._any_left() else []

    def _any_left(self) -> bool:
        return bool(self.host.group(self.pid))

    def lines(self, keep_going: Callable[[], bool]) -> Iterator[str]:
        return self.host.follow(self.log_path, lambda: keep_going() and self.alive())

    def stop(self, grace: float = 15.0) -> bool:
        """SIGTERM the group, SIGKILL after `grace`; also SIGKILL members left behind."""
        was_alive = self.alive()
        if not was_alive and not self._any_left():
            return False
        self.host.signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while (self.alive() or self._any_left()) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.alive() or self._any_left():
            self.host.signal_group(self.pid, signal.SIGKILL)
            end = time.monotonic() + 10
            while (self.alive() or self._any_left()) and time.monotonic() < end:
                time.sleep(0.05)
        return was_alive


def process_command(launch: EngineLaunch) -> Command:
    return Command(argv=launch.argv, env=dict(launch.env))


@dataclass
class _ProcessRuntime:
    host: Host
    kind: str = "process"
    outlives_corral: bool = True

    def command(self, launch: EngineLaunch, options: DockerOptions) -> Command:  # noqa: ARG002
        return process_command(launch)

    def launch(self, command: Command, log_path: Path) -> ProcessRunning:
        spawned = self.host.spawn(command.argv, command.env, log_path,
                                  outlive=self.outlives_corral)  # fmt: skip
        identity = Identity(pid=spawned.pid, pid_started_at=spawned.started_at)
        return ProcessRunning(self.host, identity, log_path)

    def adopt(self, identity: Identity, log_path: Path) -> ProcessRunning | None:
        if identity.pid is None or not self.host.alive(identity.pid, identity.pid_started_at):
            return None
        return ProcessRunning(self.host, identity, log_path)


@dataclass
class SupervisedRuntime(_ProcessRuntime):
    """Engines that end with corral."""

    outlives_corral: bool = False


@dataclass
class DetachedRuntime(_ProcessRuntime):
    """Engines that outlive corral."""

    outlives_corral: bool = True
