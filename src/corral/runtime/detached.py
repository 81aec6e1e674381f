"""An engine as a detached local process: it outlives the `corral deploy` that started it.

The low-level steps of runtime/process.py's `DetachedRuntime` on this machine (through
`LocalHost`): the engine gets its own session, its output goes to a log file, and it is
found again by pid (checked against its start time, so a reused pid is not taken for it)
for `corral logs`, `corral stop` and adoption.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import psutil

from corral.errors import EngineError

PID_TIME_SLACK = 2.0


def spawn(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> int:
    """Start `argv` in a new session with output to `log_path`; its pid.

    posix_spawn rather than Popen: a Popen object dropped while its child runs warns (and
    the child is meant to outlive this process anyway).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        return os.posix_spawnp(
            argv[0], list(argv), {**os.environ, **env}, file_actions=actions, setsid=True
        )
    except OSError as exc:
        raise EngineError(
            f"cannot start {argv[0]}: {exc.strerror}",
            hint="check the engine's executable exists (`corral render NAME` shows the command)",
        ) from exc


def started_at(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def alive(pid: int, pid_started_at: float | None) -> bool:
    """True while `pid` is the process we started (same start time) and not a zombie."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            proc.wait(0)  # our own child (deploy and stop in one process): reap it
            return False
        created = proc.create_time()
    except psutil.Error:
        return False
    return pid_started_at is None or abs(created - pid_started_at) < PID_TIME_SLACK


def stop_group(pid: int, pid_started_at: float | None, *, grace: float = 20.0) -> bool:
    """SIGTERM the process group, SIGKILL after `grace` s; False if it was already gone."""
    if not alive(pid, pid_started_at):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid, pid_started_at) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid, pid_started_at):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        while alive(pid, pid_started_at) and time.monotonic() < deadline + 10:
            time.sleep(0.1)
    return True


def follow_file(path: Path, keep_going: Callable[[], bool], *, poll: float = 0.2) -> Iterator[str]:
    """Lines of `path` from its start, then new ones as they come, while `keep_going()`.

    A partial last line is held back until its newline arrives (or following ends).
    """
    while not path.exists():
        if not keep_going():
            return
        time.sleep(poll)
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        pending = ""
        while True:
            chunk = handle.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    yield pending
                    pending = ""
                continue
            if not keep_going():
                break
            time.sleep(poll)
        if pending:
            yield pending
