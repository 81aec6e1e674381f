"""An engine as a Docker container, through the `docker` CLI on a host.

`docker_run_argv` builds the exact `docker run -d` command from a rendered deployment
(name, `--privileged`, `--gpus`, `--ipc`, network mode, read-only model mount, env,
restart policy, image, engine argv) in the seed's option order. A secret's value (a
variable named like a key or token, control/secrets.py) never goes on the command line,
where `ps` shows it: `-e KEY` names it and the value reaches `docker run` through its own
environment. `DockerCli` runs docker and
nothing else; `ContainerRunning.lines()` is `docker logs -f`, copied to the run's log
file so the startup outlives the container.

Why the CLI and not the Docker SDK: the rendered command is what the operator can read,
paste and rerun by hand (the seed's logbook keeps exactly that), and tests can put a
stand-in `docker` on PATH. Blocking calls: run them in a thread from async code.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from corral.config import DockerOptions
from corral.errors import EngineError, RuntimeMissing
from corral.recipes.render import EngineLaunch
from corral.runtime.base import Command, Identity
from corral.runtime.host import Host
from corral.secrets import is_secret

__all__ = ["ContainerRunning", "ContainerState", "DockerCli", "DockerRuntime", "docker_run_argv"]


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
        argv += ["-e", key if is_secret(key) else f"{key}={value}"]
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

    def __init__(self, host: Host, docker: str = "docker", timeout: float = 120.0) -> None:
        self.host = host
        self.docker = docker
        self.timeout = timeout

    def _call(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            return self.host.run([self.docker, *args], timeout=self.timeout, env=env)
        except EngineError:
            raise EngineError(
                f"the docker CLI ({self.docker!r}) was not found on host {self.host.name!r}",
                hint="install Docker, or use `runtime: process` for this deployment",
            ) from None

    def available(self) -> bool:
        """Whether the docker CLI exists here (a docker deployment needs it)."""
        if self.host.name == "local":
            return shutil.which(self.docker) is not None
        return True

    def run(self, argv: list[str], env: Mapping[str, str]) -> str:
        """Run `docker run -d ...` (argv[0] is replaced by this CLI); returns the id."""
        done = self._call(*argv[1:], env=env)
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
        return self.host.stream([self.docker, "logs", *(["-f"] if follow else []), name])

    def stop(self, name: str, *, grace: int = 30) -> None:
        done = self._call("stop", "--time", str(grace), name)
        if done.returncode != 0 and "No such container" not in done.stderr:
            raise EngineError(f"docker stop {name} failed: {done.stderr.strip()}")

    def remove(self, name: str) -> None:
        done = self._call("rm", "-f", name)
        if done.returncode != 0 and "No such container" not in done.stderr:
            raise EngineError(f"docker rm {name} failed: {done.stderr.strip()}")


@dataclass
class ContainerRunning:
    """A container by name. Its log lines are copied to `log_path` as they are read."""

    cli: DockerCli
    identity: Identity
    log_path: Path

    @property
    def name(self) -> str:
        assert self.identity.container is not None
        return self.identity.container

    def alive(self) -> bool:
        state = self.cli.state(self.name)
        return state is not None and state.running

    def exit_code(self) -> int | None:
        state = self.cli.state(self.name)
        return state.exit_code if state is not None and not state.running else None

    def group(self) -> list[int]:
        return [1] if self.alive() else []

    def lines(self, keep_going: Callable[[], bool]) -> Iterator[str]:
        proc = self.cli.logs(self.name, follow=True)
        assert proc.stdout is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.log_path.open("a", encoding="utf-8") as copy:
                for line in proc.stdout:
                    copy.write(line)
                    copy.flush()
                    yield line
                    if not keep_going():
                        return
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(10)
            proc.stdout.close()

    def stop(self, grace: float = 30.0) -> bool:
        """`docker stop` then `docker rm` (an exited container keeps its name)."""
        if self.cli.state(self.name) is None:
            return False
        self.cli.stop(self.name, grace=int(grace))
        self.cli.remove(self.name)
        return True


@dataclass
class DockerRuntime:
    host: Host
    docker: str = "docker"
    kind: str = "docker"
    outlives_corral: bool = True

    @property
    def cli(self) -> DockerCli:
        return DockerCli(self.host, self.docker)

    def command(self, launch: EngineLaunch, options: DockerOptions) -> Command:
        argv = docker_run_argv(launch, options, self.docker)
        return Command(tuple(argv), dict(launch.env), launch.container_name,
                       breaks=(len(argv) - len(launch.argv) - 1,), env_on_line=False)  # fmt: skip

    def launch(self, command: Command, log_path: Path) -> ContainerRunning:
        cli = self.cli
        if not cli.available():
            raise RuntimeMissing(
                f"the docker CLI ({self.docker!r}) is not installed on host {self.host.name!r}",
                hint="install Docker, or use `runtime: process` for this deployment",
            )
        cid = cli.run(list(command.argv), command.env)
        return ContainerRunning(cli, Identity(container=command.container, container_id=cid),
                                log_path)  # fmt: skip

    def adopt(self, identity: Identity, log_path: Path) -> ContainerRunning | None:
        if identity.container is None:
            return None
        running = ContainerRunning(self.cli, identity, log_path)
        if running.alive():
            return running
        running.stop()  # an exited container keeps its name; `docker rm` frees it
        return None
