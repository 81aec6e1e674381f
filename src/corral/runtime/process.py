"""A supervised local subprocess: one engine process group, its output, its states.

States and transitions (each change is reported to `on_state(old, new)`):

    stopped ──start()──▶ starting ──mark_ready()──▶ ready
       ▲                    │  │                      │
       │                    │  └──exits──▶ failed ◀───┘ exits (not asked to)
       │                 stop()            │   │
       │                    ▼              │   └─ was ready, restarts left: after a backoff
       └──group gone─── stopping ◀─stop()──┘      of backoff_initial·2ⁿ (≤ backoff_max) s
                                                   ──▶ starting (a new process, a new log)

- `start()` spawns the process in a new session (its own process group, so a Ctrl-C on
  corral's terminal doesn't reach it and a stop reaches all its children) and returns at
  once: readiness is the caller's job, which then calls `mark_ready()`.
- An exit during `starting` is final (`failed`, no restart): a start that fails is a
  configuration problem a restart won't fix. An exit after `ready` restarts, at most
  `max_restarts` times over the object's life.
- `stop()` blocks until the whole group is gone: SIGTERM to the group, SIGKILL after
  `grace` seconds, then SIGKILL for any member that outlived its leader. It cancels a
  pending restart.
- Output (stdout and stderr together) goes to a per-run log file, raw, and line by line to
  an in-memory ring of the last `ring_size` lines and to `on_line` (the engine's parser).

What can race, and how it resolves (one asyncio loop, so only at awaits): an exit during
`stop()` is an expected exit (stopping → stopped, no restart); `mark_ready()` after the
process died returns False and changes nothing; `stop()` during a restart's backoff cancels
it. The callbacks run on the loop and must not block.

The leader also gets PR_SET_PDEATHSIG=SIGTERM (Linux), so if corral itself is SIGKILLed the
engine is told to stop rather than left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO

import psutil

from corral.config import RestartPolicy
from corral.errors import EngineError

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
READ_CHUNK = 65536


class ProcessState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True)
class ProcessSpec:
    """What to run: argv, environment additions (to the inherited one), working directory."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None


StateListener = Callable[[ProcessState, ProcessState], None]
LineListener = Callable[[str], None]


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


def display_line(raw: str) -> str:
    """A line as a person should see it: no colour codes, a progress bar's last frame."""
    frames = [f for f in ANSI.sub("", raw).rstrip("\n").split("\r") if f.strip()]
    return frames[-1] if frames else ""


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


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class SupervisedProcess:
    """One supervised process group (see the module docstring for the state machine)."""

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        log_dir: Path,
        on_line: LineListener | None = None,
        on_state: StateListener | None = None,
        ring_size: int = 200,
        grace: float = 10.0,
        restart: RestartPolicy | None = None,
    ) -> None:
        self.spec = spec
        self.log_dir = log_dir
        self.on_line = on_line
        self.on_state = on_state
        self.grace = grace
        self.restart_policy = restart or RestartPolicy(max_restarts=0)
        self.state = ProcessState.STOPPED
        self.restarts = 0
        self.attempt = 0
        self.pid: int | None = None
        self.returncode: int | None = None
        self.log_path: Path | None = None
        self.started_at: float | None = None
        self._ring: deque[str] = deque(maxlen=ring_size)
        self._proc: asyncio.subprocess.Process | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- public API ---------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the process (stopped|failed → starting); returns once it is running."""
        if self.state not in (ProcessState.STOPPED, ProcessState.FAILED):
            raise EngineError(f"{self.spec.name} is {self.state}, cannot start it again")
        self._stopping = False
        await self._spawn()

    def mark_ready(self) -> bool:
        """starting → ready, when the caller's readiness check passed; False if too late."""
        if self.state is not ProcessState.STARTING or self.returncode is not None:
            return False
        self._set_state(ProcessState.READY)
        return True

    async def stop(self) -> None:
        """Stop the group (SIGTERM, SIGKILL after `grace`); returns when it is gone."""
        self._stopping = True
        if self._restart_task is not None:
            self._restart_task.cancel()
            self._restart_task = None
        if self._proc is None or self._watch_task is None or self._watch_task.done():
            self._set_state(ProcessState.STOPPED)
            return
        self._set_state(ProcessState.STOPPING)
        _signal_group(self._proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self._watch_task), self.grace)
        except TimeoutError:
            _signal_group(self._proc.pid, signal.SIGKILL)
            await self._watch_task
        self._set_state(ProcessState.STOPPED)

    async def wait_exit(self) -> int | None:
        """Wait for the current process to exit (and its group to be gone); its exit code."""
        if self._watch_task is not None:
            await asyncio.shield(self._watch_task)
        return self.returncode

    def tail(self, n: int = 40) -> list[str]:
        """The last `n` output lines, as a person should see them."""
        return list(self._ring)[-n:]

    @property
    def running(self) -> bool:
        return self._proc is not None and self.returncode is None

    # ---- spawning and output ------------------------------------------------------------

    async def _spawn(self) -> None:
        self.attempt += 1
        self.returncode = None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_path = self.log_dir / f"{self.spec.name}-{stamp}-{self.attempt}.log"
        log = self.log_path.open("wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **self.spec.env},
                cwd=self.spec.cwd,
                start_new_session=True,
                preexec_fn=_set_pdeathsig,
            )
        except OSError as exc:
            log.close()
            self._set_state(ProcessState.FAILED)
            raise EngineError(
                f"cannot start {self.spec.name}: {exc.strerror}: {self.spec.argv[0]}",
                hint="check the engine's python (the deployment's `python`) exists",
            ) from exc
        if self._stopping:
            # stop() ran while a restart was spawning (it saw no live process): this one
            # must not outlive it.
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
            log.close()
            self._set_state(ProcessState.STOPPED)
            return
        self._proc = proc
        self.pid = proc.pid
        self.started_at = time.time()
        # starting only once the process exists (observers read its pid), and before its
        # first line is read (the line callback may depend on a per-run set-up)
        self._set_state(ProcessState.STARTING)
        pump = asyncio.create_task(self._pump(proc, log))
        self._watch_task = asyncio.create_task(self._watch(proc, pump, log))

    async def _pump(self, proc: asyncio.subprocess.Process, log: IO[bytes]) -> None:
        """Copy output to the log file, the ring and `on_line`, line by line."""
        assert proc.stdout is not None
        pending = b""
        while chunk := await proc.stdout.read(READ_CHUNK):
            log.write(chunk)
            log.flush()
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._line(line.decode("utf-8", errors="replace"))
        if pending:
            self._line(pending.decode("utf-8", errors="replace"))

    def _line(self, text: str) -> None:
        shown = display_line(text)
        if shown:
            self._ring.append(shown)
        if self.on_line is not None:
            self.on_line(text)

    # ---- exit handling ------------------------------------------------------------------

    async def _watch(
        self, proc: asyncio.subprocess.Process, pump: asyncio.Task[None], log: IO[bytes]
    ) -> None:
        """Wait for the leader to exit, end what is left of its group, then react."""
        code = await proc.wait()
        await self._end_group(proc.pid, self.grace if self._stopping else 1.0)
        try:
            await asyncio.wait_for(pump, 5.0)
        except TimeoutError:
            pump.cancel()
        log.close()
        self.returncode = code
        if self._stopping:
            return
        was_ready = self.state is ProcessState.READY
        self._set_state(ProcessState.FAILED)
        if was_ready and self.restarts < self.restart_policy.max_restarts:
            self._restart_task = asyncio.create_task(self._restart_later())

    async def _end_group(self, pgid: int, grace: float) -> None:
        """Give members that outlived the leader `grace` seconds, then SIGKILL them."""
        deadline = time.monotonic() + grace
        while group_members(pgid):
            if time.monotonic() >= deadline:
                _signal_group(pgid, signal.SIGKILL)
                await asyncio.sleep(0.05)
                if time.monotonic() >= deadline + 5.0:
                    return
                continue
            await asyncio.sleep(0.1)

    async def _restart_later(self) -> None:
        delay = self.next_backoff()
        self.restarts += 1
        await asyncio.sleep(delay)
        if self.state is ProcessState.FAILED and not self._stopping:
            self._restart_task = None
            await self._spawn()

    def next_backoff(self) -> float:
        """The delay before the next restart (for messages)."""
        policy = self.restart_policy
        return float(min(policy.backoff_initial * 2**self.restarts, policy.backoff_max))

    def _set_state(self, new: ProcessState) -> None:
        old, self.state = self.state, new
        if old is not new and self.on_state is not None:
            self.on_state(old, new)
