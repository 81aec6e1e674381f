"""The one recorder: everything a deployment's run does goes to the ledger from here.

    recorder = Recorder.begin(ledger, prepared, command, runtime_kind, log_path, say)
    recorder.launched(identity)            # how to find the engine again
    recorder.line(text)                    # engine output → parser → phases/facts/failures
    recorder.ready(at) / recorder.failed(message) / recorder.ended(state, code)

The engine's log parser lives here, not in the runtimes: a runtime hands out lines, the
recorder turns them into `Phase`, `Fact` and `Failure` events and writes them. A recipe's
known issue with a `log_pattern` is recognised as the line arrives (`known_issue`), so a
start that hangs (the GB10 Marlin hang) fails at once with its remedy, not at the timeout.
Phase times are corral's clock when the line is read (the engine's stamps have whole
seconds and the engine's time zone). Secrets of the deployment's env are masked in every
row written.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from corral.engines import engine_for
from corral.engines.base import EngineEvent, Fact, Failure, LogParser, Phase
from corral.ledger import runs
from corral.ledger.db import Ledger
from corral.ledger.launches import Launch, record_launch
from corral.recipes.prepare import Prepared
from corral.recipes.render import shell_lines
from corral.recipes.schema import KnownIssue
from corral.runtime.base import Command, Identity
from corral.runtime.process import display_line
from corral.secrets import is_secret, mask_config, mask_env, mask_words

__all__ = ["Recorder", "Say", "command_text"]

Say = Callable[[str, str], None]


def command_text(command: Command) -> str:
    """The command as the operator would type it; secret values masked."""
    env = tuple(mask_env(command.env).items()) if command.env_on_line else ()
    return shell_lines(command.argv, env, command.breaks)


@dataclass
class Recorder:
    """One run's record; one writer (call it from one thread)."""

    ledger: Ledger
    prepared: Prepared
    run_id: int
    say: Say
    secrets: tuple[str, ...] = ()
    started_at: float = field(default_factory=time.time)
    parser: LogParser | None = None
    failures: list[Failure] = field(default_factory=list)
    known_issue: KnownIssue | None = None
    phase: str | None = "launch"
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=25))

    @property
    def name(self) -> str:
        return self.prepared.deployment.name

    # ---- beginning --------------------------------------------------------------------

    @classmethod
    def begin(
        cls, ledger: Ledger, prepared: Prepared, command: Command, *, runtime: str,
        log_path: Path, say: Say,
    ) -> Recorder:  # fmt: skip
        """A new run, `starting`, with its launch phase open."""
        dep = prepared.deployment
        secrets = cls.secrets_of(command)
        new = runs.NewRun(dep.name, runtime, dep.engine,
                          [mask_words(a, secrets) for a in command.argv],
                          prepared.launch.base_url, str(log_path),
                          mask_config(dep.model_dump(mode="json")))  # fmt: skip
        started = time.time()
        run_id = runs.start_run(ledger, new, at=started)
        runs.record_phase(ledger, run_id, "launch", started)
        say("phase", "launch")
        recorder = cls(ledger, prepared, run_id, say, secrets, started)
        recorder.parser = engine_for(dep.engine).parser()
        return recorder

    @staticmethod
    def secrets_of(command: Command) -> tuple[str, ...]:
        """The secret values in a command's environment (to mask wherever they'd show)."""
        return tuple(v for k, v in command.env.items() if is_secret(k) and v)

    @classmethod
    def resume(cls, ledger: Ledger, prepared: Prepared, run_id: int, say: Say) -> Recorder:
        """The recorder of a run another corral process began (adoption)."""
        row = ledger.conn.execute("SELECT started_at FROM runs WHERE id = ?", (run_id,))
        started = float(row.fetchone()["started_at"])
        return cls(ledger, prepared, run_id, say, started_at=started, phase=None)

    def launched(self, command: Command, identity: Identity, hardware: dict[str, object] | None
                 ) -> None:  # fmt: skip
        prepared = self.prepared
        launch = Launch(
            run_id=self.run_id, served_name=prepared.launch.served_name,
            shell_command=command_text(command), pid=identity.pid,
            pid_started_at=identity.pid_started_at, container=identity.container,
            container_id=identity.container_id, recipe=prepared.choice.recipe.name,
            hardware_kind=prepared.hardware_kind, hardware=hardware,
            env=mask_env(command.env),
        )  # fmt: skip
        record_launch(self.ledger, launch, prepared.choice.recipe.model_dump(mode="json"))
        self.event("start", f"run {self.run_id}")
        self._model_facts()
        self.say("start", f"run {self.run_id}: {' '.join(command.argv[:3])} ...")

    def _model_facts(self) -> None:
        """What corral knows before the engine says anything: the model's place and size."""
        if self.prepared.launch.runtime == "endpoint":
            return
        path = self.prepared.launch.model.path
        self.fact(Fact("model_path", str(path)))
        if path.is_file():  # a GGUF file (llama-server)
            self.fact(Fact("model_size_bytes", path.stat().st_size, "bytes"))
            self.fact(Fact("model_weight_files", 1))
        elif path.is_dir():
            files = [p for p in path.iterdir() if p.is_file()]
            size = sum(p.stat().st_size for p in files)
            weights = sum(1 for p in files if p.suffix in (".safetensors", ".gguf", ".bin"))
            self.fact(Fact("model_size_bytes", size, "bytes"))
            self.fact(Fact("model_weight_files", weights))

    # ---- while it starts --------------------------------------------------------------

    def line(self, text: str, at: float | None = None) -> None:
        """One output line, read at `at`."""
        shown = display_line(text)
        if shown:
            self.tail.append(mask_words(shown, self.secrets))
        self._match_known_issue(text)
        if self.parser is None:
            return
        for event in self.parser.feed(text):
            self.on_event(event, time.time() if at is None else at)

    def _match_known_issue(self, text: str) -> None:
        if self.known_issue is not None:
            return
        for issue in self.prepared.choice.recipe.known_issues:
            if issue.log_pattern and issue.log_pattern in text:
                self.known_issue = issue
                self.event("failure", f"known issue {issue.id}: {issue.message}")
                self.say("failure", f"known issue {issue.id}: {issue.message} → {issue.action}")
                return

    def on_event(self, event: EngineEvent, at: float) -> None:
        if isinstance(event, Phase):
            # the log's "ready" is the server being up; the checks after it are readiness
            self.begin_phase("readiness" if event.name == "ready" else event.name, at)
        elif isinstance(event, Fact):
            self.fact(event)
            self.say("fact", f"{event.name} = {event.value} {event.unit}".rstrip())
        else:
            self.failures.append(event)
            self.event("failure", f"{event.kind}: {event.message}")
            self.say("failure", f"{event.kind}: {event.message} ({event.hint})")

    def begin_phase(self, name: str, at: float | None = None) -> None:
        at = time.time() if at is None else at
        if name == self.phase:
            return
        runs.record_phase(self.ledger, self.run_id, name, at)
        self.phase = name
        self.say("phase", name)

    def fact(self, fact: Fact) -> None:
        runs.record_fact(self.ledger, self.run_id, fact.name, fact.value, unit=fact.unit,
                         line=mask_words(fact.line, self.secrets))  # fmt: skip

    def event(self, kind: str, detail: str = "") -> None:
        runs.record_event(self.ledger, self.name, kind, mask_words(detail, self.secrets),
                          self.run_id)  # fmt: skip

    # ---- how it ends ------------------------------------------------------------------

    def ready(self, at: float) -> float:
        """The run is serving; the seconds from launch to ready (a `startup_s` fact)."""
        runs.mark_ready(self.ledger, self.run_id, at)
        seconds = at - self.started_at
        self.fact(Fact("startup_s", round(seconds, 2), "s"))
        self.event("ready", f"ready after {seconds:.1f} s")
        self.say("ready", f"{self.prepared.launch.base_url} after {seconds:.1f} s")
        self.phase = None
        return seconds

    def failed(self, message: str, exit_code: int | None = None) -> None:
        self.event("fail", message)
        self.ended("failed", exit_code)

    def ended(self, state: str, exit_code: int | None = None) -> None:
        runs.end_run(self.ledger, self.run_id, state, exit_code, time.time())
