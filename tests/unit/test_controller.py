"""The controller over real processes: the scripted engine, and scripts that fail like vLLM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from corral.config import CorralConfig, Deployment, RestartPolicy, VerifyGate
from corral.controller.deployment import Gate, RunnerDeps
from corral.controller.fleet import Controller
from corral.controller.serve import until_stopped
from corral.engines.base import EngineEvent, LaunchCommand, LaunchSpec, Phase
from corral.engines.vllm import VllmLogParser
from corral.errors import EngineError, PortInUseError
from corral.ledger import runs
from corral.ledger.db import Ledger, open_ledger

PY = sys.executable


class ReadyLineParser:
    def feed(self, line: str) -> list[EngineEvent]:
        return [Phase("ready", None, line)] if line.startswith("READY port=") else []


class ScriptedAdapter:
    """The scripted engine behind the Engine protocol; `extra_args` are its fault flags."""

    name = "scripted"

    def command(self, spec: LaunchSpec) -> LaunchCommand:
        argv = (PY, "-m", "corral.testing.scripted_engine", "--port", str(spec.port),
                "--model", spec.served_name, *spec.extra_args)  # fmt: skip
        return LaunchCommand(argv=argv, env=(("PYTHONUNBUFFERED", "1"),))

    def parser(self) -> ReadyLineParser:
        return ReadyLineParser()

    def metric_names(self) -> dict[str, str]:
        return {}


class ScriptAdapter:
    """Runs a Python script instead of an engine, parsed as vLLM output."""

    name = "script"

    def __init__(self, code: str) -> None:
        self.code = code

    def command(self, spec: LaunchSpec) -> LaunchCommand:
        return LaunchCommand(argv=(PY, "-u", "-c", self.code))

    def parser(self) -> VllmLogParser:
        return VllmLogParser()

    def metric_names(self) -> dict[str, str]:
        return {}


class Notes:
    def __init__(self) -> None:
        self.phases: list[str] = []
        self.notes: list[str] = []

    def phase(self, deployment: str, name: str, seconds: float) -> None:
        self.phases.append(name)

    def note(self, deployment: str, message: str) -> None:
        self.notes.append(message)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    with open_ledger(tmp_path / "ledger.sqlite3") as led:
        yield led


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make_controller(
    tmp_path: Path,
    ledger: Ledger,
    http: httpx.AsyncClient,
    dep: Deployment,
    engine: object,
    *,
    gate: Gate | None = None,
    notes: Notes | None = None,
) -> Controller:
    def deps_for(_: Deployment) -> RunnerDeps:
        return RunnerDeps(
            ledger=ledger, http=http, runs_dir=tmp_path / "runs", engine=engine,  # type: ignore[arg-type]
            model_path=tmp_path, gate=gate, reporter=notes or Notes(), grace=2.0,
        )  # fmt: skip

    return Controller(CorralConfig(deployments=[dep]), deps_for)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_start_makes_a_routable_replica_and_records_the_run(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    notes = Notes()
    dep = Deployment(name="m1", model="x/y", aliases=["default"])
    controller = make_controller(tmp_path, ledger, http, dep, ScriptedAdapter(), notes=notes)
    assert controller.replicas() == []
    await controller.start_all()
    (replica,) = controller.replicas()
    assert replica.routable
    assert replica.state == "ready"
    assert replica.aliases == ("default",)
    reply = httpx.get(replica.base_url + "/v1/models")
    assert reply.json()["data"][0]["id"] == "m1"
    pid = controller.runners[0].process.pid
    assert pid is not None
    await controller.stop_all()
    assert gone(pid)
    assert not controller.replicas()[0].routable
    (row,) = runs.status(ledger)
    assert row["state"] == "stopped"
    assert [p["name"] for p in row["phases"]] == ["launch", "readiness"]
    assert all(p["seconds"] is not None for p in row["phases"])
    assert [e["kind"] for e in row["events"]] == ["start", "ready", "stop"]
    assert notes.phases == ["launch", "readiness"]


async def test_an_engine_that_dies_at_startup_gives_log_lines_and_a_hint(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    code = (
        "print('(APIServer pid=1) INFO 06-07 13:18:43 [utils.py:1] non-default args: {}'); "
        "print('(APIServer pid=1) ValueError: Chunked MM input disabled but "
        "max_tokens_per_mm_item (2496) is larger than max_num_batched_tokens (2048).'); "
        "raise SystemExit(1)"
    )
    dep = Deployment(name="gemma", model="x/y")
    controller = make_controller(tmp_path, ledger, http, dep, ScriptAdapter(code))
    with pytest.raises(EngineError) as caught:
        await controller.start_all()
    err = caught.value
    assert "exited with code 1 during config" in err.message
    assert "--max-num-batched-tokens" in (err.hint or "")
    assert any("max_tokens_per_mm_item (2496)" in line for line in err.log_tail)
    (row,) = runs.status(ledger)
    assert row["state"] == "failed"
    assert row["exit_code"] == 1
    assert [e["kind"] for e in row["events"]] == ["start", "fail"]


async def test_a_sigkill_without_an_error_line_hints_at_the_oom_killer(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    code = (
        "import os, signal; "
        "print('(EngineCore pid=9) INFO 08-01 17:49:34 [monitor.py:53] "
        "torch.compile took 30.61 s in total'); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    dep = Deployment(name="laguna", model="x/y")
    controller = make_controller(tmp_path, ledger, http, dep, ScriptAdapter(code))
    with pytest.raises(EngineError) as caught:
        await controller.start_all()
    assert "killed by SIGKILL" in caught.value.message
    assert "OOM killer" in (caught.value.hint or "")


async def test_a_slow_engine_times_out_and_is_stopped(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    dep = Deployment(name="slow", model="x/y", args=["--slow-start", "60"], startup_timeout=1.5)
    controller = make_controller(tmp_path, ledger, http, dep, ScriptedAdapter())
    with pytest.raises(EngineError, match=r"not ready after 2 s .*health") as caught:
        await controller.start_all()
    assert "startup_timeout" in (caught.value.hint or "")
    pid = controller.runners[0].process.pid
    assert pid is not None
    assert gone(pid)
    (row,) = runs.status(ledger)
    assert row["state"] == "failed"
    assert [e["kind"] for e in row["events"]] == ["start", "fail", "stop"]


async def test_the_gate_decides_routability(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    seen: list[str] = []

    async def failing_gate(dep: Deployment, base_url: str) -> bool:
        seen.append(base_url)
        return False

    dep = Deployment(name="g", model="x/y", verify=VerifyGate(gate=True))
    controller = make_controller(tmp_path, ledger, http, dep, ScriptedAdapter(), gate=failing_gate)
    with pytest.raises(EngineError, match="failed its verify gate"):
        await controller.start_all()
    assert len(seen) == 1
    assert controller.replicas()[0].gate == "failed"
    assert not controller.replicas()[0].routable

    async def passing_gate(dep: Deployment, base_url: str) -> bool:
        assert not controller2.replicas()[0].routable  # not routable while the gate runs
        return True

    controller2 = make_controller(tmp_path, ledger, http, dep, ScriptedAdapter(), gate=passing_gate)
    await controller2.start_all()
    assert controller2.replicas()[0].gate == "passed"
    assert controller2.replicas()[0].routable
    await controller2.stop_all()


async def test_a_crash_after_ready_restarts_and_becomes_routable_again(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    notes = Notes()
    dep = Deployment(
        name="c", model="x/y", restart=RestartPolicy(max_restarts=1, backoff_initial=0.2)
    )
    controller = make_controller(tmp_path, ledger, http, dep, ScriptedAdapter(), notes=notes)
    await controller.start_all()
    runner = controller.runners[0]
    first = runner.process.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    while runner.routable:
        await asyncio.sleep(0.02)
    assert not controller.replicas()[0].routable
    for _ in range(1500):
        if runner.routable:
            break
        await asyncio.sleep(0.02)
    assert runner.routable
    assert runner.process.pid != first
    await controller.stop_all()
    kinds = [e["kind"] for e in runs.events(ledger, "c")]
    assert kinds == ["start", "ready", "crash", "restart", "ready", "stop"]
    assert any("restarting in" in n for n in notes.notes)


async def test_a_taken_fixed_port_is_named(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        dep = Deployment(name="p", model="x/y", port=port)
        controller = make_controller(tmp_path, ledger, http, dep, ScriptedAdapter())
        with pytest.raises(PortInUseError, match=f"port {port}"):
            await controller.start_all()


async def test_a_stop_during_startup_leaves_no_process(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    stop = asyncio.Event()
    dep = Deployment(name="s", model="x/y", args=["--slow-start", "60"])
    controller = make_controller(tmp_path, ledger, http, dep, ScriptedAdapter())
    asyncio.get_running_loop().call_later(1.0, stop.set)
    assert await until_stopped(controller.start_all(), stop) is False
    pid = controller.runners[0].process.pid
    assert pid is not None
    assert gone(pid)
    assert controller.runners[0].process.state.value == "stopped"
