"""Start the scripted engine as a real subprocess and end it by its own process id."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCRIPTED = Path(__file__).with_name("scripted_engine.py")
"""The scripted engine's file: run it as `python SCRIPTED --port 0 ...`."""


@dataclass
class RunningEngine:
    process: subprocess.Popen[str]
    port: int
    model: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; always reaps the process."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


def start_scripted(*args: str, model: str = "scripted", timeout: float = 30.0) -> RunningEngine:
    """Launch `python SCRIPTED ARGS` on a free port; wait for READY."""
    argv = [
        sys.executable,
        str(SCRIPTED),
        "--port",
        "0",
        "--model",
        model,
        *args,
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("READY port="):
                return RunningEngine(proc, int(line.split("=", 1)[1]), model)
        if proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    raise RuntimeError(f"scripted engine did not start: {argv}")


@contextmanager
def scripted_engine(*args: str, model: str = "scripted") -> Iterator[RunningEngine]:
    engine = start_scripted(*args, model=model)
    try:
        yield engine
    finally:
        engine.stop()
