"""A deployment as a Docker container, through the `docker` CLI.

    stopped ──start()──▶ starting ──(log says ready)──▶ ready ──stop()──▶ stopping ──▶ stopped
                            └──(container exits / failure line / timeout)──▶ failed

`docker_run_argv` builds the exact `docker run` command from a rendered deployment (name,
`--privileged`, `--gpus`, `--ipc`, network mode, read-only model mount, env, restart
policy, image, engine argv). `DockerCli` runs docker and nothing else; `follow_startup`
feeds `docker logs -f` to the engine's log parser, the same parser a local process's
output goes through, so phases and capacity facts are the same whichever runtime ran it.

Why the CLI and not the Docker SDK: the rendered command is what the operator can read,
paste and rerun by hand (the seed's logbook keeps exactly that), and tests can put a
stand-in `docker` on PATH. Blocking calls: run them in a thread from async code.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from corral.config import DockerOptions
from corral.engines.base import EngineEvent, Failure, LogParser, Phase
from corral.errors import EngineError
from corral.recipes.render import EngineLaunch


def docker_run_argv(
    launch: EngineLaunch, options: DockerOptions | None = None, docker: str = "docker"
) -> list[str]:
    """`docker run -d ...` for a rendered docker deployment, in the seed's option order."""
    container = launch.container
    if container is None or launch.container_name is None:
        raise EngineError(f"deployment {launch.deployment!r} was not rendered for docker")
    options = options or DockerOptions()
    argv = [docker, "run", "-d", "--name", launch.container_name]
    if container.privileged:
        argv.append("--privileged")
    if container.gpus:
        argv += ["--gpus", container.gpus]
    if container.ipc:
        argv.append(f"--ipc={container.ipc}")
    network = options.network or container.network
    if network:
        argv += ["--network", network]
    if network != "host":
        # Bridged: publish the engine port on loopback only; the gateway is the public door.
        argv += ["-p", f"127.0.0.1:{launch.port}:{launch.port}"]
    restart = options.restart or container.restart
    if restart:
        argv += ["--restart", restart]
    for host_path, inside in launch.mounts:
        argv += ["-v", f"{host_path}:{inside}:ro"]
    for key, value in launch.env:
        argv += ["-e", f"{key}={value}"]
    argv += [*container.extra, *options.extra, options.image or container.image]
    return argv + list(launch.argv)


@dataclass(frozen=True)
class ContainerState:
    id: str
    status: str  # created | running | paused | restarting | removing | exited | dead
    exit_code: int

    @property
    def running(self) -> bool:
        return self.status in {"running", "restarting"}


class DockerCli:
    """The docker commands corral uses. `docker` is the executable (a stand-in in tests)."""

    def __init__(self, docker: str = "docker", timeout: float = 120.0) -> None:
        self.docker = docker
        self.timeout = timeout

    def _call(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [self.docker, *args],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise EngineError(
                f"the docker CLI ({self.docker!r}) was not found",
                hint="install Docker, or use `runtime: process` for this deployment",
            ) from None

    def run(self, argv: list[str]) -> str:
        """Run `docker run -d ...` (argv[0] is replaced by this CLI); returns the id."""
        done = self._call(*argv[1:])
        if done.returncode != 0:
            raise EngineError(
                f"docker run failed (exit {done.returncode}): {done.stderr.strip()}",
                hint="`corral stop NAME` removes a container left from an earlier run",
            )
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    def state(self, name: str) -> ContainerState | None:
        """The container's state, or None when no container has that name."""
        done = self._call(
            "inspect", "--format", "{{.Id}} {{.State.Status}} {{.State.ExitCode}}", name
        )
        if done.returncode != 0:
            return None
        cid, status, code = done.stdout.split()
        return ContainerState(cid, status, int(code))

    def logs(self, name: str, *, follow: bool = False) -> subprocess.Popen[str]:
        """`docker logs [-f] NAME` with stderr merged into stdout (engines log to stderr)."""
        argv = [self.docker, "logs", *(["-f"] if follow else []), name]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self, name: str, *, grace: int = 30) -> None:
        done = self._call("stop", "--time", str(grace), name)
        if done.returncode != 0 and "No such container" not in done.stderr:
            raise EngineError(f"docker stop {name} failed: {done.stderr.strip()}")

    def remove(self, name: str) -> None:
        done = self._call("rm", "-f", name)
        if done.returncode != 0 and "No such container" not in done.stderr:
            raise EngineError(f"docker rm {name} failed: {done.stderr.strip()}")


@dataclass
class Startup:
    """What `follow_startup` saw: every event, and how it ended."""

    events: list[EngineEvent] = field(default_factory=list)
    ready: bool = False
    failure: Failure | None = None
    tail: list[str] = field(default_factory=list)


def watch_lines(
    lines: Iterable[str],
    parser: LogParser,
    on_event: Callable[[EngineEvent], None] = lambda _e: None,
    *,
    stop_at_ready: bool = True,
) -> Startup:
    """Feed log lines to `parser` until the `ready` phase (or the lines end).

    Runtime-independent: a process's output or `docker logs -f` go through here alike.
    A Failure event is recorded but does not stop the watch: the engine may still exit or
    recover, and the caller decides (e.g. a timeout) what it means.
    """
    startup = Startup()
    for line in lines:
        startup.tail = [*startup.tail[-19:], line.rstrip("\n")]
        for event in parser.feed(line):
            startup.events.append(event)
            on_event(event)
            if isinstance(event, Failure) and startup.failure is None:
                startup.failure = event
            if isinstance(event, Phase) and event.name == "ready":
                startup.ready = True
        if startup.ready and stop_at_ready:
            break
    return startup


def _lines(proc: subprocess.Popen[str], deadline: float) -> Iterator[str]:
    assert proc.stdout is not None
    for line in proc.stdout:
        yield line
        if time.monotonic() > deadline:
            return


def follow_startup(
    cli: DockerCli,
    name: str,
    parser: LogParser,
    on_event: Callable[[EngineEvent], None] = lambda _e: None,
    *,
    timeout: float = 600.0,
) -> Startup:
    """Follow `docker logs -f NAME` through the parser until ready, exit, or `timeout`.

    The timeout is checked as lines arrive; an engine that hangs silently (the GB10 Marlin
    hang) is caught by the caller's readiness probe deadline, not here.
    """
    proc = cli.logs(name, follow=True)
    try:
        return watch_lines(_lines(proc, time.monotonic() + timeout), parser, on_event)
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
