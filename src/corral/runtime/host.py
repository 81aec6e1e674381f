"""The host an engine runs on: the seam between the runtimes and a machine.

A runtime (supervised process, detached process, docker container) never calls `os`,
`subprocess` or `psutil` for the engine's machine itself: it asks its `Host`. `LocalHost`
is this machine. A remote host (issue 12: SSH) implements the same protocol, running each
call over its connection, and every runtime works there unchanged.

Blocking calls: async code runs them in a thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from corral.errors import EngineError
from corral.runtime import detached
from corral.runtime.ports import free_port, port_in_use

__all__ = ["Host", "LocalHost", "Spawned"]


@dataclass(frozen=True)
class Spawned:
    """A process a host started: its pid (also its process group) and its start time."""

    pid: int
    started_at: float | None


class Host(Protocol):
    """What the runtimes need of a machine."""

    name: str

    def run(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion (e.g. `docker inspect`); output as text."""
        ...

    def stream(self, argv: Sequence[str]) -> subprocess.Popen[str]:
        """Start a command whose merged output the caller reads line by line."""
        ...

    def spawn(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path, *, outlive: bool
    ) -> Spawned:
        """Start `argv` in its own process group, output to `log_path`. `outlive`: it keeps
        running when corral exits (else it is told to stop when corral dies)."""
        ...

    def alive(self, pid: int, started_at: float | None) -> bool: ...

    def exit_code(self, pid: int) -> int | None:
        """The exit code of a process this host started, once it ended (else None)."""
        ...

    def group(self, pgid: int) -> list[int]:
        """Live members of process group `pgid`."""
        ...

    def signal_group(self, pgid: int, sig: signal.Signals) -> None: ...

    def follow(self, path: Path, keep_going: Callable[[], bool]) -> Iterator[str]:
        """A file's lines from its start, then as they come, while `keep_going()`."""
        ...

    def port_in_use(self, address: str, port: int) -> bool: ...

    def free_port(self) -> int: ...


def _find_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    return prctl


# Looked up once, here, in the parent: loading a library between fork and exec is unsafe
# once the parent has threads (asyncio's resolver pool), and can deadlock the child.
_PRCTL = _find_prctl()
PR_SET_PDEATHSIG = 1


def _set_pdeathsig() -> None:  # pragma: no cover  (runs in the child, between fork and exec)
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalHost:
    """This machine. It is the parent of the supervised engines it spawns and reaps them
    (keeping their exit codes)."""

    name = "local"

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._detached: set[int] = set()
        self._codes: dict[int, int] = {}

    def run(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **env} if env else None
        try:
            return subprocess.run(
                list(argv), capture_output=True, text=True, timeout=timeout, check=False,
                env=full_env,
            )  # fmt: skip
        except FileNotFoundError:
            raise EngineError(f"{argv[0]!r} was not found on this machine") from None

    def stream(self, argv: Sequence[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def spawn(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path, *, outlive: bool
    ) -> Spawned:
        if outlive:
            pid = detached.spawn(argv, env, log_path)
            self._detached.add(pid)  # our child while we live: reaped here, code kept
            return Spawned(pid, detached.started_at(pid))
        popen = _spawn_child(argv, env, log_path)
        self._children[popen.pid] = popen
        return Spawned(popen.pid, detached.started_at(popen.pid))

    def alive(self, pid: int, started_at: float | None) -> bool:
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        if pid in self._detached and pid not in self._codes:
            code = _reap(pid)
            if code is not None:
                self._codes[pid] = code
        if pid in self._codes:
            return False
        return detached.alive(pid, started_at)

    def exit_code(self, pid: int) -> int | None:
        child = self._children.get(pid)
        if child is not None:
            return child.poll()
        self.alive(pid, None)
        return self._codes.get(pid)

    def group(self, pgid: int) -> list[int]:
        return group_members(pgid)

    def signal_group(self, pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def follow(self, path: Path, keep_going: Callable[[], bool]) -> Iterator[str]:
        return detached.follow_file(path, keep_going)

    def port_in_use(self, address: str, port: int) -> bool:
        return port_in_use(address, port)

    def free_port(self) -> int:
        return free_port()


def _spawn_child(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """A child in its own session that gets SIGTERM if corral dies (PR_SET_PDEATHSIG)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            popen = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **env}, start_new_session=True,
                # only prctl, looked up before the fork: nothing that could take a lock
                preexec_fn=_set_pdeathsig,  # noqa: PLW1509
            )  # fmt: skip
        except OSError as exc:
            raise EngineError(
                f"cannot start {argv[0]}: {exc.strerror}",
                hint="check the engine's executable exists (`corral render NAME` shows it)",
            ) from exc
    return popen


def _reap(pid: int) -> int | None:
    """The exit code of our finished child `pid`, else None (running, or not ours)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    found: list[int] = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return found
