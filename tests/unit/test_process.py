"""The supervised process: real tiny subprocesses and the scripted engine, ended by pid."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psutil
import pytest

from corral.config import RestartPolicy
from corral.errors import EngineError
from corral.runtime.process import ProcessSpec, ProcessState, SupervisedProcess, display_line

PY = sys.executable


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Recorder:
    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []
        self.lines: list[str] = []

    def on_state(self, old: ProcessState, new: ProcessState) -> None:
        self.states.append((old.value, new.value))

    def on_line(self, line: str) -> None:
        self.lines.append(line)


def supervised(tmp_path: Path, code: str, rec: Recorder, **kw: object) -> SupervisedProcess:
    spec = ProcessSpec(name="t", argv=(PY, "-u", "-c", code))
    return SupervisedProcess(
        spec,
        log_dir=tmp_path,
        on_line=rec.on_line,
        on_state=rec.on_state,
        **kw,  # type: ignore[arg-type]
    )


async def wait_for(predicate: object, timeout: float = 15.0) -> None:
    async def loop() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), timeout)


async def test_output_goes_to_log_ring_and_callback_and_an_early_exit_fails(
    tmp_path: Path,
) -> None:
    rec = Recorder()
    code = (
        "import sys; print('one'); print('two\\rthree'); sys.stdout.write('partial'); sys.exit(3)"
    )
    proc = supervised(tmp_path, code, rec, restart=RestartPolicy(max_restarts=3))
    await proc.start()
    assert await proc.wait_exit() == 3
    assert rec.lines == ["one", "two\rthree", "partial"]
    assert proc.tail() == ["one", "three", "partial"]  # a progress bar's last frame
    assert proc.log_path is not None
    assert proc.log_path.read_bytes() == b"one\ntwo\rthree\npartial"
    # an exit while starting is final: no restart
    assert rec.states == [("stopped", "starting"), ("starting", "failed")]
    assert proc.state is ProcessState.FAILED
    assert proc.mark_ready() is False


async def test_ring_keeps_only_the_last_lines(tmp_path: Path) -> None:
    rec = Recorder()
    proc = supervised(tmp_path, "for i in range(50): print(i)", rec, ring_size=5)
    await proc.start()
    await proc.wait_exit()
    assert proc.tail() == ["45", "46", "47", "48", "49"]
    assert proc.tail(2) == ["48", "49"]


async def test_stop_sends_sigterm_and_the_group_is_gone(tmp_path: Path) -> None:
    rec = Recorder()
    # the leader starts a grandchild in its group, then waits; SIGTERM ends both
    code = (
        "import subprocess, sys, time; "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('child', c.pid, flush=True); time.sleep(60)"
    )
    proc = supervised(tmp_path, code, rec, grace=5.0)
    await proc.start()
    await wait_for(lambda: any(line.startswith("child") for line in rec.lines))
    child = int(rec.lines[0].split()[1])
    assert proc.mark_ready() is True
    leader = proc.pid
    assert leader is not None
    await proc.stop()
    assert proc.state is ProcessState.STOPPED
    assert gone(leader)
    assert gone(child)
    assert rec.states[-2:] == [("ready", "stopping"), ("stopping", "stopped")]


async def test_sigkill_after_grace_for_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    rec = Recorder()
    code = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "c = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); "
        "print('child', c.pid, flush=True); time.sleep(60)"
    )
    proc = supervised(tmp_path, code, rec, grace=0.5)
    await proc.start()
    await wait_for(lambda: bool(rec.lines))
    child = int(rec.lines[0].split()[1])
    await proc.stop()
    assert proc.returncode == -9  # SIGKILL, not SIGTERM
    assert gone(child)
    assert proc.state is ProcessState.STOPPED


async def test_scripted_engine_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    rec = Recorder()
    spec = ProcessSpec(
        name="scripted",
        argv=(PY, "-m", "corral.testing.scripted_engine", "--port", "0", "--ignore-sigterm"),
        env={"PYTHONUNBUFFERED": "1"},
    )
    proc = SupervisedProcess(
        spec, log_dir=tmp_path, on_line=rec.on_line, on_state=rec.on_state, grace=0.5
    )
    await proc.start()
    await wait_for(lambda: any(line.startswith("READY port=") for line in rec.lines), 30.0)
    pid = proc.pid
    assert pid is not None
    await proc.stop()
    assert proc.returncode == -9
    assert gone(pid)


async def test_a_crash_after_ready_restarts_with_backoff(tmp_path: Path) -> None:
    rec = Recorder()
    # each run waits for its own go-ahead file, so the crash comes after mark_ready()
    code = (
        "import os, pathlib, time; print('up', flush=True)\n"
        f"flag = pathlib.Path({str(tmp_path)!r}) / f'crash-{{os.getpid()}}'\n"
        "while not flag.exists(): time.sleep(0.02)\n"
        "raise SystemExit(1)"
    )
    policy = RestartPolicy(max_restarts=2, backoff_initial=0.1, backoff_max=0.15)
    proc = supervised(tmp_path, code, rec, restart=policy)
    await proc.start()
    pids: list[int] = []
    for attempt in (1, 2, 3):
        await wait_for(lambda n=attempt: proc.attempt == n and proc.state is ProcessState.STARTING)
        assert proc.pid is not None
        pids.append(proc.pid)
        assert proc.mark_ready()  # the caller's readiness passed: a later exit is a crash
        (tmp_path / f"crash-{proc.pid}").touch()
        await proc.wait_exit()
    await wait_for(lambda: proc.state is ProcessState.FAILED)
    await asyncio.sleep(0.4)  # longer than any backoff: no fourth start
    assert proc.state is ProcessState.FAILED
    assert proc.restarts == 2
    assert len(set(pids)) == 3
    assert [s for s in rec.states if s[1] == "starting"] == [
        ("stopped", "starting"), ("failed", "starting"), ("failed", "starting"),
    ]  # fmt: skip
    assert all(gone(pid) for pid in pids)
    logs = sorted(p.name for p in tmp_path.glob("*.log"))
    assert len(logs) == 3  # one log file per run


async def test_stop_during_backoff_cancels_the_restart(tmp_path: Path) -> None:
    rec = Recorder()
    code = (
        "import pathlib, time; print('up', flush=True)\n"
        f"while not (pathlib.Path({str(tmp_path)!r}) / 'crash').exists(): time.sleep(0.02)\n"
        "raise SystemExit(1)"
    )
    proc = supervised(tmp_path, code, rec, restart=RestartPolicy(backoff_initial=5.0))
    await proc.start()
    assert proc.mark_ready()  # so the exit is a crash, and a restart is due in 5 s
    (tmp_path / "crash").touch()
    await proc.wait_exit()
    await wait_for(lambda: proc.state is ProcessState.FAILED)
    await proc.stop()
    assert proc.state is ProcessState.STOPPED
    await asyncio.sleep(0.1)
    assert proc.attempt == 1


async def test_a_missing_program_is_an_engine_error(tmp_path: Path) -> None:
    spec = ProcessSpec(name="x", argv=(str(tmp_path / "no-such-python"), "-V"))
    proc = SupervisedProcess(spec, log_dir=tmp_path)
    with pytest.raises(EngineError, match="no-such-python"):
        await proc.start()
    assert proc.state is ProcessState.FAILED


def test_display_line_strips_colour_and_keeps_the_last_frame() -> None:
    assert display_line("\x1b[1;36m(APIServer pid=1)\x1b[0;0m a\rb\r\n") == "b"
    assert display_line("\r\n") == ""
