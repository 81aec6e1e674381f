"""Child processes of a command end when the command does: Ctrl-C, SIGTERM, or an error.

A long command (`models pull`, `models stage`, `bench`, ...) runs in the foreground, and a
signal may reach it alone, not its process group (`kill PID`, a supervisor, a test): the
children must not outlive it. Two pieces do that:

- `install_sigterm()` (called by the CLI's `main`) makes SIGTERM unwind the stack like
  Ctrl-C does, so every `finally` runs; Python's default would exit at once, skipping them.
  `corral serve` installs its own handlers on its event loop, which take precedence.
- `ended(proc)` wraps a `subprocess.Popen`: leaving the block for any reason while the
  child runs sends it SIGTERM, then SIGKILL after `grace` seconds, and reaps it.
  (`Popen`'s own context manager only waits for the child, and on Ctrl-C not even that.)
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

P = TypeVar("P", bound="subprocess.Popen[str]")

EXIT_ON_SIGINT = 130  # 128 + the signal's number, as shells report it
EXIT_ON_SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; unwinds like Ctrl-C (cleanup runs)."""


@dataclass
class SigtermSeen:
    """Whether SIGTERM arrived (click re-raises a plain KeyboardInterrupt, losing the type)."""

    seen: bool = False

    def exit_code(self) -> int:
        return EXIT_ON_SIGTERM if self.seen else EXIT_ON_SIGINT

    def handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.seen = True
        raise Terminated


def install_sigterm() -> SigtermSeen:
    """SIGTERM raises `Terminated` in the main thread (see the module docstring)."""
    seen = SigtermSeen()
    signal.signal(signal.SIGTERM, seen.handle)
    return seen


@contextmanager
def ended(proc: P, *, grace: float = 0.5) -> Iterator[P]:
    """Yield `proc`; on leaving, a child still running is terminated, then killed."""
    try:
        yield proc
    finally:
        stop(proc, grace)


def stop(proc: subprocess.Popen[str], grace: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
