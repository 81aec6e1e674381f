"""The deploy flow, as small steps over passed-in services (ledger, docker CLI, detector):

    prepare (recipe, exact command) → adopt the running engine, or launch it detached
      → watch its log (phases, facts, failures) while probing readiness → mark ready
      → verify suite → optional quick story benchmark → a DeployResult for the summary

Everything lands in the ledger as it happens, one transaction per write: a deploy killed
half-way leaves a run in `starting`, which the next deploy (or stop) settles after checking
whether its engine still lives.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from corral.config import CorralConfig
from corral.deploy.handles import ContainerHandle, EngineHandle, ProcessHandle, handle_for
from corral.engines import engine_for
from corral.engines.base import EngineEvent, Fact, Failure, Phase
from corral.errors import EngineError, PortInUseError
from corral.ledger import runs
from corral.ledger.db import Ledger
from corral.ledger.launches import (
    Launch,
    fact_rows,
    launch_of,
    live_run,
    record_launch,
    runs_of,
)
from corral.paths import runs_dir
from corral.recipes.prepare import Detector, Prepared, prepare
from corral.recipes.render import shell_lines
from corral.runtime import detached
from corral.runtime.docker import DockerCli, docker_run_argv, watch_lines
from corral.runtime.ports import port_in_use
from corral.runtime.process import display_line
from corral.runtime.readiness import NotReady, Probe, wait_ready

Say = Callable[[str, str], None]
Planner = Callable[[Prepared, dict[str, str]], dict[str, tuple[float | str, str]]]
AFTER_READY_GRACE = 5.0


@dataclass
class DeployOptions:
    force: bool = False
    verify: bool = True
    checks: list[str] | None = None
    bench: bool = False
    bench_max_tokens: int = 128
    timeout: float | None = None


@dataclass
class Services:
    """What the flow talks to; the CLI builds the real ones, tests their own."""

    ledger: Ledger
    home: Path
    detect: Detector
    docker: DockerCli = field(default_factory=DockerCli)
    say: Say = lambda _kind, _text: None
    planner: Planner | None = None


@dataclass
class DeployResult:
    deployment: str
    run_id: int
    adopted: bool
    base_url: str
    served_name: str
    startup_s: float | None
    prepared: Prepared
    verify: list[Any] = field(default_factory=list)
    bench: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def deploy(
    config: CorralConfig, name: str, services: Services, options: DeployOptions
) -> DeployResult:
    """Deploy `name` (see the module docstring); EngineError if it never became ready."""
    prepared = prepare(config, name, services.home, services.detect, force=options.force)
    services.say("recipe", f"{prepared.choice.recipe.name} for {prepared.hardware_kind}")
    if prepared.choice.forced:
        services.say("forced", "; ".join(prepared.choice.mismatches))
    if prepared.choice.fallback is not None:
        services.say(
            "fallback",
            "; ".join([prepared.choice.fallback.reason, *prepared.choice.fallback.notes]),
        )
    for issue in prepared.choice.recipe.known_issues:
        services.say("issue", f"{issue.id} ({issue.condition}): {issue.message} → {issue.action}")
    run_id, handle, adopted, notes = launch_or_adopt(prepared, services)
    timeout = options.timeout or prepared.deployment.startup_timeout
    try:
        startup_s = asyncio.run(
            startup(prepared, run_id, handle, services, timeout=timeout, adopted=adopted)
        )
    except NotReady as exc:
        fail_run(services, prepared, run_id, handle, exc)
        raise startup_error(services, prepared, run_id, exc) from exc
    result = DeployResult(
        name,
        run_id,
        adopted,
        prepared.launch.base_url,
        prepared.launch.served_name,
        startup_s,
        prepared,
        notes=notes,
    )
    if not adopted and services.planner is not None:
        record_planned(services, prepared, run_id, services.planner)
    if options.verify:
        result.verify = run_verify(prepared, run_id, services, options.checks)
    if options.bench:
        result.bench = run_bench(prepared, run_id, services, options.bench_max_tokens)
    return result


# ---- launch or adopt ------------------------------------------------------------------


def launch_or_adopt(
    prepared: Prepared, services: Services
) -> tuple[int, EngineHandle, bool, list[str]]:
    """The run to watch: the live one when its engine still runs, else a new launch."""
    name = prepared.deployment.name
    live = live_run(services.ledger, name)
    if live is not None:
        launch = launch_of(services.ledger, int(live["id"]))
        handle = handle_for(launch, live["log_path"], services.docker) if launch else None
        if handle is not None and handle.alive():
            runs.record_event(
                services.ledger, name, "adopt", "engine already running", int(live["id"])
            )
            services.say("adopt", f"run {live['id']} is already running; adopting it")
            return int(live["id"]), handle, True, changed_command(live, prepared)
        if handle is not None:
            handle.stop()  # an exited container keeps its name; `docker rm` frees it
        settle_dead_run(services, name, int(live["id"]))
    run_id, handle = launch_new(prepared, services)
    return run_id, handle, False, []


def changed_command(live: dict[str, Any], prepared: Prepared) -> list[str]:
    recorded = json.loads(live["command"])
    wanted = list(prepared.launch.argv)
    if recorded[-len(wanted) :] == wanted:
        return []
    return [
        "the running engine was started with a different command than the config now "
        "renders; `corral stop` and deploy again to apply the change"
    ]


def settle_dead_run(services: Services, name: str, run_id: int) -> None:
    """A run the ledger thinks is live but whose engine is gone (e.g. corral was killed)."""
    runs.end_run(services.ledger, run_id, "failed", None, time.time())
    runs.record_event(services.ledger, name, "crash", "engine found gone", run_id)
    services.say("settle", f"run {run_id} had ended unrecorded; marked failed")


def launch_new(prepared: Prepared, services: Services) -> tuple[int, EngineHandle]:
    dep, launch = prepared.deployment, prepared.launch
    # Something already answering on the port would pass the readiness probe in place of
    # the engine about to start (which then dies with "address in use"). Local processes
    # only: a container's port is the docker daemon's to check (and the tests' stand-in
    # docker has a scripted engine answer on it).
    if launch.runtime == "process" and port_in_use(launch.host, launch.port):
        raise PortInUseError(
            f"cannot start {dep.name}: port {launch.port} on {launch.host} is already in use",
            hint=f"stop whatever listens on port {launch.port} (`corral status` shows corral's "
            "own runs), or set a free `port:` for the deployment",
        )
    log_path = runs_dir(services.home) / f"{dep.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    docker = launch.runtime == "docker"
    argv = docker_run_argv(launch, dep.docker, services.docker.docker) if docker else None
    command = argv or list(launch.argv)
    new = runs.NewRun(
        dep.name,
        launch.runtime,
        dep.engine,
        command,
        launch.base_url,
        str(log_path),
        dep.model_dump(mode="json"),
    )
    started = time.time()
    run_id = runs.start_run(services.ledger, new, at=started)
    try:
        handle, pid, cid = spawn(prepared, services, argv, log_path)
    except EngineError as exc:
        runs.end_run(services.ledger, run_id, "failed", None, time.time())
        runs.record_event(services.ledger, dep.name, "fail", exc.message, run_id)
        raise
    record_launch(
        services.ledger,
        launch_record(prepared, run_id, pid=pid, cid=cid, argv=argv, services=services),
        prepared.choice.recipe.model_dump(mode="json"),
    )
    runs.record_phase(services.ledger, run_id, "launch", started)
    runs.record_event(services.ledger, dep.name, "start", f"run {run_id}", run_id)
    record_model_facts(services.ledger, run_id, prepared)
    services.say("start", f"run {run_id}: {' '.join(command[:3])} ...")
    return run_id, handle


def spawn(
    prepared: Prepared, services: Services, argv: list[str] | None, log_path: Path
) -> tuple[EngineHandle, int | None, str | None]:
    launch = prepared.launch
    if argv is not None:
        cid = services.docker.run(argv)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = ContainerHandle(services.docker, launch.container_name or "", log_path)
        return handle, None, cid
    pid = detached.spawn(launch.argv, dict(launch.env), log_path)
    return ProcessHandle(pid, detached.started_at(pid), log_path), pid, None


def launch_record(
    prepared: Prepared,
    run_id: int,
    *,
    pid: int | None,
    cid: str | None,
    argv: list[str] | None,
    services: Services,
) -> Launch:
    launch = prepared.launch
    hardware = services.detect().model_dump(mode="json") if prepared.hardware_kind else None
    if argv is not None:
        shell = shell_lines(argv, breaks=(len(argv) - len(launch.argv) - 1,))
    else:
        shell = shell_lines(launch.argv, launch.env)
    return Launch(
        run_id=run_id,
        served_name=launch.served_name,
        shell_command=shell,
        pid=pid,
        pid_started_at=detached.started_at(pid) if pid else None,
        container=launch.container_name if argv is not None else None,
        container_id=cid,
        recipe=prepared.choice.recipe.name,
        hardware_kind=prepared.hardware_kind,
        hardware=hardware if prepared.hardware_source.startswith("detected") else None,
        env=dict(launch.env),
    )


def record_model_facts(ledger: Ledger, run_id: int, prepared: Prepared) -> None:
    """What corral knows before the engine says anything: the model's place and size."""
    path = prepared.launch.model.path
    runs.record_fact(ledger, run_id, "model_path", str(path))
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        weights = sum(1 for p in files if p.suffix in (".safetensors", ".gguf", ".bin"))
        runs.record_fact(ledger, run_id, "model_size_bytes", size, unit="bytes")
        runs.record_fact(ledger, run_id, "model_weight_files", weights)


# ---- startup: log watch and readiness -------------------------------------------------


async def startup(
    prepared: Prepared,
    run_id: int,
    handle: EngineHandle,
    services: Services,
    *,
    timeout: float,
    adopted: bool,
) -> float | None:
    """Watch the log and probe readiness together; the seconds from launch to ready."""
    events: queue.Queue[tuple[EngineEvent, float]] = queue.Queue()
    done = threading.Event()
    watcher = None
    if not adopted:
        watcher = threading.Thread(
            target=watch_log, args=(prepared, handle, events, done), daemon=True
        )
        watcher.start()
    probe = Probe(prepared.launch.base_url, prepared.launch.served_name, timeout)
    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(wait_ready(probe, client, handle.alive))
        while not task.done():
            drain(events, run_id, prepared, services)
            await asyncio.wait([task], timeout=0.2)
    ready_at = time.time()
    if watcher is not None:
        await asyncio.to_thread(watcher.join, AFTER_READY_GRACE)
    done.set()
    drain(events, run_id, prepared, services)
    task.result()  # NotReady propagates
    state = services.ledger.conn.execute("SELECT state FROM runs WHERE id = ?", (run_id,))
    if state.fetchone()["state"] == "ready":
        return None  # adopted a run that was already ready
    return mark_ready(services, prepared, run_id, ready_at)


def watch_log(
    prepared: Prepared,
    handle: EngineHandle,
    events: queue.Queue[tuple[EngineEvent, float]],
    done: threading.Event,
) -> None:
    """Thread body: feed the engine's log to its parser until it says ready (or ends)."""
    parser = engine_for(prepared.deployment.engine).parser()
    lines = handle.lines(lambda: not done.is_set())
    # Each event is stamped when it was read: the engine's own stamps have one-second
    # resolution and the engine's clock and time zone (a container's may differ).
    watch_lines(lines, parser, lambda event: events.put((event, time.time())))


def drain(
    events: queue.Queue[tuple[EngineEvent, float]],
    run_id: int,
    prepared: Prepared,
    services: Services,
) -> None:
    """Record the events the watcher found (on the caller's thread: one ledger writer)."""
    ledger, name = services.ledger, prepared.deployment.name
    while True:
        try:
            event, read_at = events.get_nowait()
        except queue.Empty:
            return
        if isinstance(event, Phase) and event.name != "ready":
            runs.record_phase(ledger, run_id, event.name, read_at)
            services.say("phase", event.name)
        elif isinstance(event, Fact):
            runs.record_fact(
                ledger, run_id, event.name, event.value, unit=event.unit, line=event.line
            )
            services.say("fact", f"{event.name} = {event.value} {event.unit}".rstrip())
        elif isinstance(event, Failure):
            runs.record_event(ledger, name, "failure", f"{event.kind}: {event.message}", run_id)
            services.say("failure", f"{event.kind}: {event.message} ({event.hint})")


def mark_ready(services: Services, prepared: Prepared, run_id: int, ready_at: float) -> float:
    runs.mark_ready(services.ledger, run_id, ready_at)
    row = services.ledger.conn.execute(
        "SELECT started_at FROM runs WHERE id = ?", (run_id,)
    ).fetchone()
    seconds = ready_at - float(row["started_at"])
    runs.record_fact(services.ledger, run_id, "startup_s", round(seconds, 2), unit="s")
    runs.record_event(
        services.ledger, prepared.deployment.name, "ready", f"ready after {seconds:.1f} s", run_id
    )
    services.say("ready", f"{prepared.launch.base_url} after {seconds:.1f} s")
    return seconds


def record_planned(services: Services, prepared: Prepared, run_id: int, planner: Planner) -> None:
    """The planner's figures for this run as `planned.*` facts, beside the logged ones."""
    logged = {r["name"]: r["value"] for r in fact_rows(services.ledger, run_id)}
    for name, (value, unit) in planner(prepared, logged).items():
        runs.record_fact(services.ledger, run_id, f"planned.{name}", value, unit=unit)


def startup_error(
    services: Services, prepared: Prepared, run_id: int, exc: NotReady
) -> EngineError:
    """The failure as the user should see it: the log's last lines and, when the log
    shows a recipe's known issue (its `log_pattern`), that issue and its remedy."""
    row = services.ledger.conn.execute("SELECT log_path FROM runs WHERE id = ?", (run_id,))
    path = Path(row.fetchone()["log_path"])
    text = path.read_text(errors="replace") if path.is_file() else ""
    tail = [display_line(line) for line in text.splitlines()[-15:]]
    issues = [
        f"known issue {i.id}: {i.message} (the recipe: {i.action})"
        for i in prepared.choice.recipe.known_issues
        if i.log_pattern and i.log_pattern in text
    ]
    hint = "; ".join(issues) or f"`corral logs {prepared.deployment.name}` shows the whole log"
    return EngineError(f"{prepared.deployment.name}: {exc.message}", hint=hint, log_tail=tail)


def fail_run(
    services: Services, prepared: Prepared, run_id: int, handle: EngineHandle, exc: NotReady
) -> None:
    """Startup failed: record it, stop what is left of the engine."""
    name = prepared.deployment.name
    runs.record_event(services.ledger, name, "fail", exc.message, run_id)
    handle.stop()
    runs.end_run(services.ledger, run_id, "failed", None, time.time())


# ---- verify and bench -----------------------------------------------------------------


def run_verify(
    prepared: Prepared, run_id: int, services: Services, checks: list[str] | None
) -> list[Any]:
    """The verify suite against the engine, recorded in 0002's tables."""
    from corral.verify import Target, run_suite
    from corral.verify.store import NewVerifyRun, record_verify_run

    launch, dep = prepared.launch, prepared.deployment
    target = Target(launch.base_url, launch.served_name, dep.capabilities)
    results = asyncio.run(
        run_suite(
            target,
            checks,
            lambda r: services.say("check", f"{r.name}: {r.status.value} {r.detail}"),
        )
    )
    record_verify_run(
        services.ledger,
        NewVerifyRun(
            launch.base_url, launch.served_name, results, deployment=dep.name, run_id=run_id
        ),
    )
    return results


def run_bench(
    prepared: Prepared, run_id: int, services: Services, max_tokens: int
) -> dict[str, Any]:
    """The seed's story table, capped at `max_tokens` per story, recorded in 0003's tables."""
    from corral.bench.api import Progress, Resolved, story_command
    from corral.bench.client import Endpoint
    from corral.bench.results import Target
    from corral.bench.story import StorySettings

    launch = prepared.launch
    resolved = Resolved(
        Target(launch.base_url, prepared.deployment.name, run_id),
        Endpoint(launch.base_url, launch.served_name),
        services.home,
    )
    services.say("bench", f"story table, at most {max_tokens} tokens per story")
    return story_command(resolved, StorySettings(max_tokens=max_tokens), None, Progress())


# ---- stop and logs --------------------------------------------------------------------


def stop(name: str, services: Services) -> int:
    """Stop the live run of `name`; its run id. EngineError when nothing runs."""
    live = live_run(services.ledger, name)
    if live is None:
        raise EngineError(
            f"{name!r} has no running engine in the ledger",
            hint=f"`corral deploy {name}` starts it",
        )
    run_id = int(live["id"])
    launch = launch_of(services.ledger, run_id)
    was_running = False
    if launch is not None:
        was_running = handle_for(launch, live["log_path"], services.docker).stop()
    runs.end_run(services.ledger, run_id, "stopped", None, time.time())
    detail = "stopped" if was_running else "engine was already gone"
    runs.record_event(services.ledger, name, "stop", detail, run_id)
    return run_id


def log_lines(name: str, services: Services, *, follow: bool = False) -> Iterator[str]:
    """The newest run's log: `docker logs` for a container that still exists, else the
    run's log file; `follow` keeps reading while the engine runs."""
    all_runs = runs_of(services.ledger, name)
    if not all_runs:
        raise EngineError(f"{name!r} has never been deployed", hint=f"corral deploy {name}")
    run = all_runs[-1]
    launch = launch_of(services.ledger, int(run["id"]))
    if launch is not None and launch.container and services.docker.state(launch.container):
        proc = services.docker.logs(launch.container, follow=follow)
        assert proc.stdout is not None
        with proc.stdout:
            yield from proc.stdout
        proc.wait()
        return
    live = run["ended_at"] is None and launch is not None
    handle = handle_for(launch, run["log_path"], services.docker) if live and launch else None
    keep: Callable[[], bool] = handle.alive if (follow and handle) else (lambda: False)
    yield from detached.follow_file(Path(run["log_path"]), keep)
