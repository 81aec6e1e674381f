"""The process runtimes (supervised and detached) through the runtime protocol: real tiny
subprocesses, ended by pid."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from corral.errors import EngineError
from corral.runtime import Command, DetachedRuntime, LocalHost, SupervisedRuntime
from corral.runtime.process import ProcessRunning, display_line

PY = sys.executable


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def launch(tmp_path: Path, code: str, *, detached: bool = False) -> ProcessRunning:
    host = LocalHost()
    runtime = DetachedRuntime(host) if detached else SupervisedRuntime(host)
    running = runtime.launch(Command((PY, "-u", "-c", code), {"X_FLAG": "1"}), tmp_path / "t.log")
    assert isinstance(running, ProcessRunning)
    return running


def test_output_from_the_start_and_the_exit_code(tmp_path: Path) -> None:
    running = launch(tmp_path, "import os; print('one'); print(os.environ['X_FLAG']); exit(3)")
    lines = list(running.lines(lambda: True))
    assert lines == ["one\n", "1\n"]
    wait_for(lambda: not running.alive())
    assert running.exit_code() == 3
    assert not running.stop()  # already gone


def test_stop_ends_the_whole_group(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time; "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('child', c.pid, flush=True); time.sleep(60)"
    )
    running = launch(tmp_path, code)
    wait_for(lambda: "child" in (tmp_path / "t.log").read_text())
    child = int((tmp_path / "t.log").read_text().split()[1])
    assert set(running.group()) == {running.pid, child}
    assert running.stop(grace=5)
    assert gone(running.pid)
    assert gone(child)
    assert running.exit_code() == -signal.SIGTERM


def test_sigkill_after_grace_and_for_members_that_outlive_the_leader(tmp_path: Path) -> None:
    code = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "c = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); "
        "print('child', c.pid, flush=True); time.sleep(60)"
    )
    running = launch(tmp_path, code)
    wait_for(lambda: "child" in (tmp_path / "t.log").read_text())
    child = int((tmp_path / "t.log").read_text().split()[1])
    assert running.stop(grace=0.5)
    assert running.exit_code() == -signal.SIGKILL
    assert gone(child)


def test_a_detached_engine_is_found_again_by_pid_and_start_time(tmp_path: Path) -> None:
    running = launch(tmp_path, "import time; print('up', flush=True); time.sleep(60)",
                     detached=True)  # fmt: skip
    try:
        other = DetachedRuntime(LocalHost())  # another corral process would build its own
        again = other.adopt(running.identity, running.log_path)
        assert again is not None
        assert again.alive()
        wrong = running.identity.__class__(running.pid, (running.identity.pid_started_at or 0) - 99)
        assert other.adopt(wrong, running.log_path) is None  # a reused pid is not the engine
        assert os.getpgid(running.pid) == running.pid  # its own group (and session)
    finally:
        running.stop(grace=2)
    assert not running.alive()
    assert DetachedRuntime(LocalHost()).adopt(running.identity, running.log_path) is None


def test_a_missing_program_is_an_engine_error(tmp_path: Path) -> None:
    runtime = SupervisedRuntime(LocalHost())
    with pytest.raises(EngineError, match="no-such-python"):
        runtime.launch(Command((str(tmp_path / "no-such-python"), "-V")), tmp_path / "t.log")


def test_display_line_strips_colour_and_keeps_the_last_frame() -> None:
    assert display_line("\x1b[1;36m(APIServer pid=1)\x1b[0;0m a\rb\r\n") == "b"
    assert display_line("\r\n") == ""
