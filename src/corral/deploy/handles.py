"""A launched engine, whichever runtime runs it: is it alive, its log lines, stop it.

ProcessHandle    a detached local process (pid + start time, a log file)
ContainerHandle  a docker container (by name; `docker logs -f`)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from corral.errors import EngineError
from corral.ledger.launches import Launch
from corral.runtime import detached
from corral.runtime.docker import DockerCli


class EngineHandle(Protocol):
    def alive(self) -> bool: ...

    def lines(self, keep_going: Callable[[], bool]) -> Iterator[str]:
        """The log from its start; ends when the engine ends or `keep_going()` is False."""
        ...

    def stop(self) -> bool: ...


@dataclass
class ProcessHandle:
    pid: int
    pid_started_at: float | None
    log_path: Path

    def alive(self) -> bool:
        return detached.alive(self.pid, self.pid_started_at)

    def lines(self, keep_going: Callable[[], bool]) -> Iterator[str]:
        # At the end of the file: go on while asked to and while the engine lives.
        return detached.follow_file(self.log_path, lambda: keep_going() and self.alive())

    def stop(self) -> bool:
        return detached.stop_group(self.pid, self.pid_started_at)


@dataclass
class ContainerHandle:
    """`copy_to`: a file that keeps the lines read (the container and its log may be
    removed; the ledger's log path still holds the startup)."""

    cli: DockerCli
    name: str
    copy_to: Path | None = None

    def alive(self) -> bool:
        state = self.cli.state(self.name)
        return state is not None and state.running

    def lines(self, keep_going: Callable[[], bool]) -> Iterator[str]:
        proc = self.cli.logs(self.name, follow=True)
        assert proc.stdout is not None
        copy = self.copy_to.open("a", encoding="utf-8") if self.copy_to else None
        try:
            for line in proc.stdout:
                if copy is not None:
                    copy.write(line)
                    copy.flush()
                yield line
                if not keep_going():
                    return
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(10)
            proc.stdout.close()
            if copy is not None:
                copy.close()

    def stop(self) -> bool:
        if self.cli.state(self.name) is None:
            return False
        self.cli.stop(self.name)
        self.cli.remove(self.name)
        return True


def handle_for(launch: Launch, log_path: str | None, cli: DockerCli) -> EngineHandle:
    """The handle of a recorded run."""
    if launch.container:
        return ContainerHandle(cli, launch.container)
    if launch.pid is not None and log_path:
        return ProcessHandle(launch.pid, launch.pid_started_at, Path(log_path))
    raise EngineError(f"run {launch.run_id} has neither a process nor a container recorded")
