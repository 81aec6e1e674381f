"""One deployment brought to life: engine command → supervised process → phases and facts
→ readiness → verify gate → a routable replica; and the ledger record of all of it.

`DeploymentRunner.start()` blocks until the replica is routable (or raises EngineError
with the engine's last log lines and a hint). After that the runner reacts to the
process's state changes: a crash makes the replica unroutable at once and is recorded;
the process's restart policy starts a new run, which goes through readiness (and the
gate) again in the background before it takes traffic.

Phase times are corral's own clock at the moment a line arrives (the engine's stamps have
whole seconds only), and the first phase, `launch`, starts at the spawn: vLLM spends
about ten seconds importing before its first log line.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from corral.config import Deployment
from corral.controller.diagnose import StartFailure, explain
from corral.controller.view import Replica
from corral.engines.base import Engine, EngineEvent, Fact, Failure, LaunchSpec, LogParser, Phase
from corral.engines.vllm import tool_parser_for
from corral.errors import EngineError, PortInUseError
from corral.ledger import runs
from corral.ledger.db import Ledger
from corral.runtime.ports import free_port, port_in_use
from corral.runtime.process import ProcessSpec, ProcessState, SupervisedProcess
from corral.runtime.readiness import NotReady, Probe, wait_ready

Gate = Callable[[Deployment, str], Awaitable[bool]]
"""A post-ready check (the verify suite): the replica takes traffic only once it passes."""


class Reporter(Protocol):
    """Where progress goes while engines start (the CLI prints it)."""

    def phase(self, deployment: str, name: str, seconds: float) -> None: ...

    def note(self, deployment: str, message: str) -> None: ...


class SilentReporter:
    """Reports nothing (tests, library use)."""

    def phase(self, deployment: str, name: str, seconds: float) -> None:  # noqa: ARG002
        return None

    def note(self, deployment: str, message: str) -> None:  # noqa: ARG002
        return None


@dataclass
class RunnerDeps:
    """What a runner needs from outside; tests hand in their own."""

    ledger: Ledger
    http: httpx.AsyncClient
    runs_dir: Path
    engine: Engine
    model_path: Path
    cache_dir: Path | None = None
    gate: Gate | None = None
    reporter: Reporter = field(default_factory=SilentReporter)
    cpu_cores: int | None = None
    device: str = "cpu"
    python: str = sys.executable
    grace: float = 15.0


def launch_spec(dep: Deployment, deps: RunnerDeps, port: int) -> LaunchSpec:
    """What the deployment asks of its engine."""
    given = " ".join(dep.args)
    parser = None if "--tool-call-parser" in given else tool_parser_for(dep.model)
    return LaunchSpec(
        model_path=deps.model_path,
        served_name=dep.name,
        port=port,
        max_model_len=dep.max_model_len,
        tool_parser=parser if dep.capabilities.tools else None,
        auto_tool_choice=dep.capabilities.tools and parser is not None,
        extra_args=tuple(dep.args),
        extra_env=tuple(dep.env.items()),
        cpu_cores=deps.cpu_cores,
        cpu_kv_cache_gib=dep.kv_cache_gib,
        python=deps.python,
        device=deps.device,
        cache_dir=deps.cache_dir,
    )


def engine_port(dep: Deployment) -> int:
    """The deployment's fixed port if it names one (and it is free), else a free one."""
    if dep.port is None:
        return free_port()
    if port_in_use("127.0.0.1", dep.port):
        raise PortInUseError(
            f"deployment {dep.name!r} wants port {dep.port}, which is already in use",
            hint=f"stop whatever listens on port {dep.port}, or remove `port:` from the "
            "deployment so corral picks a free one",
        )
    return dep.port


class DeploymentRunner:
    """One deployment's engine process, run record, readiness and replica."""

    def __init__(self, dep: Deployment, deps: RunnerDeps) -> None:
        self.dep = dep
        self.deps = deps
        self.port = engine_port(dep)
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = deps.engine.command(launch_spec(dep, deps, self.port))
        self.command = command
        self.process = SupervisedProcess(
            ProcessSpec(name=dep.name, argv=command.argv, env=command.env_dict()),
            log_dir=deps.runs_dir,
            on_line=self._on_line,
            on_state=self._on_state,
            grace=deps.grace,
            restart=dep.restart,
        )
        self.run_id: int | None = None
        self.routable = False
        self.gate_state = "none" if deps.gate is None or not dep.verify.gate else "pending"
        self.failures: list[Failure] = []
        self.facts: dict[str, float | str] = {}
        self._parser: LogParser = deps.engine.parser()
        self._phase: tuple[str, float] | None = None
        self._background: asyncio.Task[None] | None = None
        self.started_at = 0.0
        self.ready_seconds: float | None = None
        self._start_failed = False

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Launch and wait until routable; EngineError (process stopped) if it fails."""
        await self.process.start()
        try:
            await self._become_ready()
        except BaseException:
            await self.process.stop()
            raise

    async def stop(self) -> None:
        self.routable = False
        if self._background is not None:
            self._background.cancel()
        await self.process.stop()

    def replica(self) -> Replica:
        dep = self.dep
        return Replica(
            id=f"{dep.name}@127.0.0.1:{self.port}",
            served_name=dep.name,
            base_url=self.base_url,
            aliases=tuple(dep.aliases),
            roles=tuple(dep.roles),
            capabilities=dep.capabilities,
            limits=dep.limits,
            timeouts=dep.timeouts,
            engine=dep.engine,
            routable=self.routable,
            state=self.process.state.value,
            gate=self.gate_state,
        )

    async def _become_ready(self) -> None:
        probe = Probe(self.base_url, self.dep.name, timeout=self.dep.startup_timeout)
        try:
            await wait_ready(probe, self.deps.http, alive=lambda: self.process.running)
        except NotReady as exc:
            if exc.exited:
                await self.process.wait_exit()
            raise self._start_error(exc) from None
        await self._pass_gate()
        if not self.process.mark_ready():
            raise self._start_error(NotReady("exited", step="mark ready", exited=True))
        self._mark_routable()

    async def _pass_gate(self) -> None:
        gate = self.deps.gate
        if gate is None or not self.dep.verify.gate:
            return
        self._begin_phase("verify")
        self.gate_state = "running"
        passed = await gate(self.dep, self.base_url)
        self.gate_state = "passed" if passed else "failed"
        self._event("gate", self.gate_state)
        if not passed:
            raise EngineError(
                f"{self.dep.name!r} started but failed its verify gate",
                hint="run `corral verify` against it to see which checks fail, or set "
                "`verify.gate: false` in the deployment",
            )

    def _mark_routable(self) -> None:
        now = time.time()
        self._end_phase(now)
        self.ready_seconds = now - self.started_at
        if self.run_id is not None:
            runs.mark_ready(self.deps.ledger, self.run_id, now)
        self._event("ready", f"{self.ready_seconds:.1f} s after launch")
        self.routable = True

    def _start_error(self, exc: NotReady) -> EngineError:
        info = StartFailure(
            deployment=self.dep.name,
            exited=exc.exited,
            exit_code=self.process.returncode,
            last_phase=self._phase[0] if self._phase else None,
            failures=tuple(self.failures),
            log_path=str(self.process.log_path) if self.process.log_path else None,
            timeout=self.dep.startup_timeout,
            step=exc.step,
        )
        message, hint = explain(info)
        self._start_failed = True
        self._event("fail", message)
        return EngineError(message, hint=hint, log_tail=self.process.tail(25))

    # ---- process callbacks --------------------------------------------------------------

    def _on_state(self, old: ProcessState, new: ProcessState) -> None:
        if new is ProcessState.STARTING:
            self._new_run(restart=old is ProcessState.FAILED)
        elif new is ProcessState.FAILED:
            self._failed(was_ready=old is ProcessState.READY)
        elif new is ProcessState.STOPPED and old is not ProcessState.FAILED:
            # a start that failed (timeout, gate) is stopped by corral but is still a failure
            self._ended("failed" if self._start_failed else "stopped")
            self._event("stop", "")

    def _new_run(self, *, restart: bool) -> None:
        self.routable = False
        self._start_failed = False
        self._parser = self.deps.engine.parser()
        self.failures, self.facts = [], {}
        self.started_at = time.time()
        self.run_id = runs.start_run(
            self.deps.ledger,
            runs.NewRun(
                deployment=self.dep.name, runtime=self.dep.runtime, engine=self.dep.engine,
                command=list(self.command.argv), base_url=self.base_url,
                log_path=str(self.process.log_path or ""),
                config=self.dep.model_dump(mode="json"),
            ),
            at=self.started_at,
        )  # fmt: skip
        self._phase = None
        self._begin_phase("launch", self.started_at)
        self._event("restart" if restart else "start", " ".join(self.command.argv))
        if restart:
            self._background = asyncio.get_running_loop().create_task(self._ready_again())

    def _failed(self, *, was_ready: bool) -> None:
        self.routable = False
        code = self.process.returncode
        self._ended("failed")
        if was_ready:
            self._event("crash", f"exit code {code}")
            left = self.dep.restart.max_restarts - self.process.restarts
            then = (
                f"restarting in {self.process.next_backoff():.0f} s"
                if left > 0
                else "no restarts left"
            )
            self.deps.reporter.note(self.dep.name, f"engine exited (code {code}); {then}")

    async def _ready_again(self) -> None:
        try:
            await self._become_ready()
            self.deps.reporter.note(self.dep.name, "ready again after a restart")
        except EngineError as exc:
            # a restarted engine that never gets ready is stopped, not left half-alive
            self.deps.reporter.note(self.dep.name, f"restart failed: {exc.message}")
            await self.process.stop()

    def _ended(self, state: str) -> None:
        if self.run_id is not None:
            runs.end_run(self.deps.ledger, self.run_id, state, self.process.returncode, time.time())

    def _on_line(self, line: str) -> None:
        for event in self._parser.feed(line):
            self._on_event(event)

    def _on_event(self, event: EngineEvent) -> None:
        if isinstance(event, Phase):
            # the log's "ready" is the server being up; the checks after it are readiness
            self._begin_phase("readiness" if event.name == "ready" else event.name)
        elif isinstance(event, Fact):
            self.facts[event.name] = event.value
            if self.run_id is not None:
                runs.record_fact(
                    self.deps.ledger, self.run_id, event.name, event.value,
                    unit=event.unit, line=event.line,
                )  # fmt: skip
        elif isinstance(event, Failure):
            self.failures.append(event)

    # ---- phases -------------------------------------------------------------------------

    def _begin_phase(self, name: str, at: float | None = None) -> None:
        at = time.time() if at is None else at
        self._end_phase(at)
        self._phase = (name, at)
        if self.run_id is not None:
            runs.record_phase(self.deps.ledger, self.run_id, name, at)

    def _end_phase(self, at: float) -> None:
        if self._phase is not None:
            name, began = self._phase
            self.deps.reporter.phase(self.dep.name, name, at - began)
            self._phase = None

    def _event(self, kind: str, detail: str) -> None:
        runs.record_event(self.deps.ledger, self.dep.name, kind, detail, self.run_id)
