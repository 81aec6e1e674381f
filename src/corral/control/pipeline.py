"""The one pipeline for a deployment, used by `serve`, `deploy`, `stop`, `logs` and `status`:

    prepare: resolve the model in the store → match the recipe to the host's hardware (and
             show its known issues) → plan check (refuse, with the planner's figures, what
             cannot fit) → the exact command (recipes/render.py; the runtime wraps it)
    claim:   under the deployment's lock, adopt the engine the ledger says is running, or
             launch one through the runtime (ports checked first)
    start:   follow its output from the start into the recorder while probing readiness;
             a recipe's known issue in the log fails the start at once
    gate:    the verify gate, when the deployment has one
    → a `Live` deployment, which the caller publishes (serve) or summarizes (deploy)

Every write goes through the recorder (control/recorder.py). The lock is a file per
deployment in the data directory, so two corral processes (a `serve` and a `deploy` from
another terminal, or two `serve`s) never launch one deployment twice: the second finds
the first's run in the ledger and adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import fcntl
import functools
import json
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from corral.config import CorralConfig, Deployment
from corral.control.diagnose import StartFailure, explain
from corral.control.recorder import Recorder, Say
from corral.errors import DoesNotFit, EngineError, PortInUseError
from corral.hosts.group import GroupRunning, GroupRuntime, adopt_ranks
from corral.hosts.pool import address_of, reachable_url
from corral.ledger import runs
from corral.ledger.db import Ledger
from corral.ledger.hosts import RunHost, record_run_host, run_hosts
from corral.ledger.launches import launch_of, live_run, runs_of
from corral.paths import runs_dir
from corral.recipes.prepare import Detector, Prepared, forced_warning, prepare
from corral.runtime import runtime_for
from corral.runtime.base import Command, Identity, Running, Runtime
from corral.runtime.docker import DockerRuntime
from corral.runtime.endpoint import EndpointRuntime
from corral.runtime.host import Host, LocalHost
from corral.runtime.process import DetachedRuntime
from corral.runtime.readiness import NotReady, Probe, wait_ready
from corral.secrets import mask_words

__all__ = [
    "Gate",
    "Live",
    "Planner",
    "Services",
    "bring_up",
    "claim",
    "deployment_lock",
    "differs",
    "find_running",
    "found_in",
    "log_lines",
    "prepare_checked",
    "settle_dead_run",
    "stop_deployment",
]

HostOf = Callable[[str], Host]
Planner = Callable[[Prepared, dict[str, str]], dict[str, tuple[float | str, str]]]
Gate = Callable[[Deployment, str, int], Awaitable[bool]]  # deployment, base URL, run id
AFTER_READY_GRACE = 1.0


@dataclass
class Services:
    """What the pipeline talks to; the CLI builds the real ones, tests their own."""

    ledger: Ledger
    home: Path
    detect: Detector
    host: Host = field(default_factory=LocalHost)
    docker: str = "docker"
    say: Say = lambda _kind, _text: None
    planner: Planner | None = None
    hosts: HostOf | None = None  # host name → Host (serve's pool): a group's ranks' hosts


@dataclass
class Live:
    """A deployment whose engine is up: launched here or adopted."""

    prepared: Prepared
    run_id: int
    running: Running
    recorder: Recorder
    adopted: bool
    startup_s: float | None = None
    notes: list[str] = field(default_factory=list)
    host: Host = field(default_factory=LocalHost)

    @property
    def name(self) -> str:
        return self.prepared.deployment.name

    @property
    def hosts(self) -> list[Host]:
        """Every host the engine runs on: a group's ranks' hosts, else its one host."""
        return self.running.hosts if isinstance(self.running, GroupRunning) else [self.host]

    @functools.cached_property
    def base_url(self) -> str:
        """Where corral reaches the engine: its own URL here, an SSH forward to another
        host's loopback there (hosts/pool.py; decision 0014)."""
        return reachable_url(self.host, self.prepared.launch.base_url)


# ---- prepare --------------------------------------------------------------------------


def prepare_checked(
    config: CorralConfig, name: str, services: Services, *, force: bool = False
) -> Prepared:
    """Model, recipe, exact command; DoesNotFit when the planner says it can't fit."""
    prepared = prepare(config, name, services.home, services.detect, force=force)
    services.say("recipe", f"{prepared.choice.recipe.name} for {prepared.hardware_kind}")
    if prepared.choice.forced:
        services.say("forced", forced_warning(prepared))
    if prepared.choice.fallback is not None:
        fallback = prepared.choice.fallback
        services.say("fallback", "; ".join([fallback.reason, *fallback.notes]))
    for issue in prepared.choice.recipe.known_issues:
        services.say("issue", f"{issue.id} ({issue.condition}): {issue.message} → {issue.action}")
    if prepared.launch.model.path.is_file():  # a GGUF (llama-server): read its header first
        preflight_gguf(prepared, services)
    plan_check(prepared)
    return prepared


def preflight_gguf(prepared: Prepared, services: Services) -> None:
    """Before a llama-server starts: the GGUF is a model file and fits in memory (the
    planner's figures in the error otherwise, and in the output when it fits)."""
    from corral.planner.llama import check_fits

    launch = prepared.launch
    plan = check_fits(launch.model.path, launch.argv, services.detect())
    services.say("plan", plan.figures())


def plan_check(prepared: Prepared) -> None:
    """Refuse before launch what the planner shows cannot fit (its figures in the message):
    the rendered command's memory settings, read the way the engine reads them."""
    from corral.deploy.planning import preflight

    try:
        preflight(prepared)
    except DoesNotFit as exc:
        raise type(exc)(f"{prepared.deployment.name}: {exc.message}", hint=exc.hint) from None


# ---- claim: adopt or launch -----------------------------------------------------------


@contextlib.contextmanager
def deployment_lock(home: Path, name: str) -> Iterator[None]:
    """One launcher per deployment across corral processes (a flock, freed on exit)."""
    path = home / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_running(ledger: Ledger, name: str, host: Host, docker: str = "docker", *,
                 hosts: HostOf | None = None
                 ) -> tuple[dict[str, Any], Running | None] | None:  # fmt: skip
    """The ledger's live run of `name` and its engine (None when the engine is gone). A
    run with ranks on several hosts (`run_hosts`) is found rank by rank through `hosts`
    (host name → Host) and is gone when any rank is."""
    live = live_run(ledger, name)
    if live is None:
        return None
    launch = launch_of(ledger, int(live["id"]))
    if launch is None:
        return live, None
    identity = Identity(launch.pid, launch.pid_started_at, launch.container,
                        launch.container_id)  # fmt: skip
    log_path = Path(live["log_path"] or "/dev/null")
    ranked = run_hosts(ledger, int(live["id"]))
    if len(ranked) > 1 and hosts is not None:
        return live, adopt_ranks(ranked, hosts, launch.container, log_path, docker)
    adopter: Runtime = DockerRuntime(host, docker) if launch.container else DetachedRuntime(host)
    if live["runtime"] == "endpoint":
        adopter = EndpointRuntime(host)
    return live, adopter.adopt(identity, log_path)


def found_in(services: Services, name: str) -> tuple[dict[str, Any], Running | None] | None:
    """`find_running` with the services' ledger, host, docker CLI and hosts (for groups)."""
    return find_running(services.ledger, name, services.host, services.docker,
                        hosts=services.hosts)  # fmt: skip


def claim(prepared: Prepared, services: Services, runtime: Runtime) -> Live:
    """Adopt the running engine of the deployment, or launch one (blocking)."""
    name = prepared.deployment.name
    with deployment_lock(services.home, name):
        found = found_in(services, name)
        if found is not None:
            live, running = found
            if running is not None:
                return _adopted(prepared, services, runtime, live, running)
            settle_dead_run(services.ledger, name, int(live["id"]), services.say)
        return launch_new(prepared, services, runtime)


def _adopted(prepared: Prepared, services: Services, runtime: Runtime, live: dict[str, Any],
             running: Running) -> Live:  # fmt: skip
    run_id = int(live["id"])
    recorder = Recorder.resume(services.ledger, prepared, run_id, services.say)
    recorder.event("adopt", "engine already running")
    services.say("adopt", f"run {run_id} is already running; adopting it")
    wanted = runtime.command(prepared.launch, prepared.deployment.docker)
    notes = command_diff(json.loads(live["command"]), wanted, recorder.secrets_of(wanted))
    for note in notes:
        services.say("differs", note)
    return Live(prepared, run_id, running, recorder, adopted=True, notes=notes,
                host=services.host)  # fmt: skip


def differs(prepared: Prepared, services: Services, runtime: Runtime) -> list[str]:
    """How the running engine's command differs from the config's (empty: same or none)."""
    live = live_run(services.ledger, prepared.deployment.name)
    if live is None:
        return []
    wanted = runtime.command(prepared.launch, prepared.deployment.docker)
    return command_diff(json.loads(live["command"]), wanted, Recorder.secrets_of(wanted))


def command_diff(recorded: list[str], wanted: Command, secrets: tuple[str, ...]) -> list[str]:
    """How the running engine's command differs from what the config renders now."""
    now = [mask_words(a, secrets) for a in wanted.argv]
    if recorded == now:
        return []
    diff = difflib.unified_diff(recorded, now, "running", "config", lineterm="", n=1)
    body = " ".join(line for line in list(diff)[2:] if line[:1] in "+-")
    return [
        f"the running engine was started with a different command than the config now "
        f"renders ({body}); `corral deploy NAME` applies it"
    ]


def settle_dead_run(ledger: Ledger, name: str, run_id: int, say: Say) -> None:
    """A run the ledger thinks is live but whose engine is gone (e.g. corral was killed)."""
    runs.end_run(ledger, run_id, "failed", None, time.time())
    runs.record_event(ledger, name, "crash", "engine found gone", run_id)
    say("settle", f"run {run_id} had ended unrecorded; marked failed")


def launch_new(prepared: Prepared, services: Services, runtime: Runtime) -> Live:
    dep, launch = prepared.deployment, prepared.launch
    check_port(prepared, services.host, runtime)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = runs_dir(services.home) / f"{dep.name}-{stamp}-{time.time_ns() % 10**6}.log"
    command = runtime.command(launch, dep.docker)
    recorder = Recorder.begin(services.ledger, prepared, command, runtime=runtime.kind,
                              log_path=log_path, say=services.say)  # fmt: skip
    try:
        running = runtime.launch(command, log_path)
    except EngineError as exc:
        recorder.failed(exc.message)
        # keep the type: a missing runtime is permanent (not retried), a crash is not
        raise type(exc)(f"{dep.name}: {exc.message}", hint=exc.hint) from None
    recorder.launched(command, running.identity, _hardware(prepared, services))
    for placed in placements(services.host, runtime, running):
        record_run_host(services.ledger, replace(placed, run_id=recorder.run_id))
    return Live(prepared, recorder.run_id, running, recorder, adopted=False, host=services.host)


def placements(host: Host, runtime: Runtime, running: Running) -> list[RunHost]:
    """Where the engine runs, for the ledger's `run_hosts`: each rank of a group, else the
    one host (run id 0: the caller fills it in)."""
    if isinstance(runtime, GroupRuntime) and isinstance(running, GroupRunning):
        return runtime.placements(running)
    identity = running.identity
    return [RunHost(0, host.name, address_of(host), pid=identity.pid,
                    pid_started_at=identity.pid_started_at)]  # fmt: skip


def _hardware(prepared: Prepared, services: Services) -> dict[str, object] | None:
    if not prepared.hardware_source.startswith("detected"):
        return None
    detected: dict[str, object] = services.detect().model_dump(mode="json")
    return detected


def check_port(prepared: Prepared, host: Host, runtime: Runtime) -> None:
    """Something already answering on the port would pass the readiness probe in place of
    the engine about to start. Local processes only: a container's port is the docker
    daemon's to check (and the tests' stand-in docker has a scripted engine answer)."""
    launch = prepared.launch
    if runtime.kind == "process" and host.port_in_use(launch.host, launch.port):
        raise PortInUseError(
            f"cannot start {launch.deployment}: port {launch.port} on {launch.host} is "
            "already in use by another program",
            hint=f"stop whatever listens on port {launch.port} (`corral status` shows "
            "corral's own runs), or set a free `port:` for the deployment",
        )


# ---- start: output into the recorder while probing readiness --------------------------


async def bring_up(
    prepared: Prepared,
    services: Services,
    runtime: Runtime,
    *,
    timeout: float | None = None,
    gate: Gate | None = None,
    http: httpx.AsyncClient | None = None,
) -> Live:
    """Adopt or launch, then wait until it serves (and passed its gate). EngineError (with
    the engine's last lines and the known issue or a diagnosis) when it doesn't; the failed
    engine is stopped and its run recorded as failed."""
    live = await asyncio.to_thread(claim, prepared, services, runtime)
    timeout = timeout or prepared.deployment.startup_timeout
    async with contextlib.AsyncExitStack() as stack:
        client = http if http is not None else await stack.enter_async_context(httpx.AsyncClient())
        if live.adopted:
            live.startup_s = await _adopt_ready(live, client, timeout)
        else:
            live.startup_s = await _startup(live, client, timeout)
        await _pass_gate(live, gate)
    return live


async def _adopt_ready(live: Live, client: httpx.AsyncClient, timeout: float) -> float | None:
    """An adopted engine: already ready (nothing to record), or still starting (wait)."""
    row = live.recorder.ledger.conn.execute("SELECT state FROM runs WHERE id = ?", (live.run_id,))
    probe = probe_for(live, timeout)
    try:
        await wait_ready(probe, client, lambda: True)
    except NotReady as exc:
        raise await _start_failed(live, exc) from None
    if row.fetchone()["state"] == "ready":
        return None
    return await asyncio.to_thread(live.recorder.ready, time.time())


async def _startup(live: Live, client: httpx.AsyncClient, timeout: float) -> float:
    watch = LineWatch(live.running)
    watch.start()
    probe = probe_for(live, timeout)
    task = asyncio.create_task(wait_ready(probe, client, live.running.alive))
    try:
        while not task.done():
            watch.drain(live.recorder)
            if live.recorder.known_issue is not None:
                task.cancel()
                raise await _start_failed(live, None)
            await asyncio.wait([task], timeout=0.2)
        try:
            task.result()
        except NotReady as exc:
            await asyncio.to_thread(watch.finish, live.recorder, 1.0)
            raise await _start_failed(live, exc) from None
        ready_at = time.time()
        await asyncio.to_thread(watch.finish, live.recorder, AFTER_READY_GRACE)
        return await asyncio.to_thread(live.recorder.ready, ready_at)
    finally:
        watch.done.set()
        if not task.done():
            task.cancel()


def probe_for(live: Live, timeout: float) -> Probe:
    """Readiness of an engine (`/health`), or of an endpoint (which may have none)."""
    health = "/v1/models" if live.prepared.deployment.endpoint else "/health"
    return Probe(live.base_url, live.prepared.launch.served_name, timeout, health_path=health)


class LineWatch:
    """A thread that reads the engine's output into a queue, stamped when read; the
    recorder drains it on the caller's side (one ledger writer)."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.lines: queue.Queue[tuple[str, float]] = queue.Queue()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _read(self) -> None:
        for line in self.running.lines(lambda: not self.done.is_set()):
            self.lines.put((line, time.time()))

    def drain(self, recorder: Recorder) -> None:
        while True:
            try:
                line, at = self.lines.get_nowait()
            except queue.Empty:
                return
            recorder.line(line, at)

    def finish(self, recorder: Recorder, grace: float) -> None:
        """Keep reading until the log's own `ready` line (late facts) or `grace` s."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and recorder.phase != "readiness":
            self.drain(recorder)
            if not self.thread.is_alive():
                break
            time.sleep(0.05)
        self.done.set()
        self.drain(recorder)


async def _start_failed(live: Live, exc: NotReady | None) -> EngineError:
    """Stop what is left of the engine, record the failure, and explain it."""
    recorder, running = live.recorder, live.running
    await asyncio.to_thread(running.stop)
    code = await asyncio.to_thread(running.exit_code)
    message, hint = _explain(live, exc, code)
    await asyncio.to_thread(recorder.failed, message, code)
    return EngineError(message, hint=hint, log_tail=list(recorder.tail)[-15:])


def _explain(live: Live, exc: NotReady | None, code: int | None) -> tuple[str, str]:
    name, issue = live.name, live.recorder.known_issue
    log = f"`corral logs {name}` shows the whole log"
    if issue is not None:
        return (f"{name}: known issue {issue.id}: {issue.message}",
                f"known issue {issue.id}: the recipe {issue.action}; {log}")  # fmt: skip
    assert exc is not None
    info = StartFailure(
        deployment=name, exited=exc.exited, exit_code=code, last_phase=live.recorder.phase,
        failures=tuple(live.recorder.failures), log_path=str(live.running.log_path),
        timeout=live.prepared.deployment.startup_timeout, step=exc.step,
    )  # fmt: skip
    return explain(info)


async def _pass_gate(live: Live, gate: Gate | None) -> None:
    dep = live.prepared.deployment
    if gate is None or not dep.verify.gate:
        return
    live.recorder.begin_phase("verify")
    passed = await gate(dep, live.base_url, live.recorder.run_id)
    live.recorder.event("gate", "passed" if passed else "failed")
    if not passed:
        await asyncio.to_thread(live.running.stop)
        live.recorder.failed("failed its verify gate")
        raise EngineError(
            f"{dep.name!r} started but failed its verify gate",
            hint="run `corral verify` against it to see which checks fail, or set "
            "`verify.gate: false` in the deployment",
        )


# ---- stop and logs --------------------------------------------------------------------


def stop_deployment(name: str, services: Services, *, reason: str = "stopped") -> int:
    """Stop the live run of `name` (under its lock); its run id. EngineError when none."""
    with deployment_lock(services.home, name):
        found = found_in(services, name)
        if found is None:
            raise EngineError(
                f"{name!r} has no running engine in the ledger",
                hint=f"`corral deploy {name}` starts it",
            )
        live, running = found
        run_id = int(live["id"])
        runs.set_state(services.ledger, run_id, "stopping")
        was_running = running.stop() if running is not None else False
        runs.end_run(services.ledger, run_id, "stopped", None, time.time())
        detail = reason if was_running else "engine was already gone"
        runs.record_event(services.ledger, name, "stop", detail, run_id)
    return run_id


def log_lines(name: str, services: Services, *, follow: bool = False) -> Iterator[str]:
    """The newest run's log: `docker logs` while its container exists, else the run's log
    file; `follow` keeps reading while the engine runs."""
    all_runs = runs_of(services.ledger, name)
    if not all_runs:
        raise EngineError(f"{name!r} has never been deployed", hint=f"corral deploy {name}")
    run = all_runs[-1]
    launch = launch_of(services.ledger, int(run["id"]))
    cli = DockerRuntime(services.host, services.docker).cli
    if launch is not None and launch.container and cli.state(launch.container):
        proc = cli.logs(launch.container, follow=follow)
        assert proc.stdout is not None
        with proc.stdout:
            yield from proc.stdout
        proc.wait()
        return
    found = found_in(services, name)
    running = found[1] if found and run["ended_at"] is None else None
    keep = running.alive if (follow and running is not None) else (lambda: False)
    yield from services.host.follow(Path(run["log_path"]), keep)


def runtime_of(dep: Deployment, services: Services, *, supervised: bool,
               config: CorralConfig | None = None) -> Runtime:  # fmt: skip
    """How `dep` runs: an endpoint, a multi-node group (`nodes:`, given the config and
    `services.hosts`: one runtime per node, on that node's host), or the runtime of its
    `runtime:` on `services.host`."""
    if dep.endpoint is not None:
        return EndpointRuntime(services.host)
    if dep.nodes and config is not None and services.hosts is not None:
        hosts = services.hosts
        runtimes = {node: runtime_of(dep.model_copy(update={"nodes": []}),
                                     replace(services, host=hosts(node)), supervised=supervised)
                    for node in dep.nodes}  # fmt: skip
        return GroupRuntime(dep, config, runtimes, services.ledger)
    return runtime_for(dep.runtime, services.host, supervised=supervised, docker=services.docker)
