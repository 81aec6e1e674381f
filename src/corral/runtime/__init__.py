"""How an engine lives on a host: the runtime protocol (`base`), the host seam (`host`),
and three runtimes: a supervised child process, a detached process, a docker container.

    runtime = runtime_for("process", LocalHost(), supervised=False)
"""

from corral.runtime.base import Command, Identity, Running, Runtime
from corral.runtime.docker import DockerRuntime
from corral.runtime.host import Host, LocalHost, Spawned
from corral.runtime.process import DetachedRuntime, SupervisedRuntime

__all__ = [
    "Command",
    "DetachedRuntime",
    "DockerRuntime",
    "Host",
    "Identity",
    "LocalHost",
    "Running",
    "Runtime",
    "Spawned",
    "SupervisedRuntime",
    "runtime_for",
]


def runtime_for(kind: str, host: Host, *, supervised: bool, docker: str = "docker") -> Runtime:
    """The runtime for a deployment's `runtime:` (`process` or `docker`) on `host`;
    `supervised`: a process ends with corral (else it outlives it)."""
    if kind == "docker":
        return DockerRuntime(host, docker)
    return SupervisedRuntime(host) if supervised else DetachedRuntime(host)
