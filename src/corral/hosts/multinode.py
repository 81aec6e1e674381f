"""One engine across several hosts: the command each rank runs, in the order they start.

`nodes: [pegasus, stella]` on a deployment makes one engine of the group of hosts, using
vLLM's own multi-node mode; corral adds no transport of its own. Two backends:

* `mp` (the default; what the GB10 community moved to after Ray compiled-graph problems):
  every node runs the same `vllm serve` with `--distributed-executor-backend mp --nnodes N
  --node-rank R --master-addr HEAD --master-port P`; ranks above 0 add `--headless` (no API
  server there). This is the shape of vLLM's documented multi-node commands
  (docs/serving/parallelism_scaling.md: "rank 0 runs the server and workers join the same
  head address with `--headless`") and of its LeaderWorkerSet example.
* `ray`: a Ray head on the first node (`ray start --head`), a Ray worker on each other node
  (`ray start --address HEAD:6379`), then one `vllm serve ... --distributed-executor-backend
  ray` on the head, as eugr's `launch-cluster.sh` does for two Sparks.

Every rank gets the node's interface for NCCL and GLOO (`hosts.NAME.interface` →
`NCCL_SOCKET_IFNAME`, `GLOO_SOCKET_IFNAME`) and its own address (`VLLM_HOST_IP`), so the
ranks find each other on the link the user meant (the QSFP cable between two Sparks, not
the management LAN).

`ranks()` is pure: it takes the single-node command the recipe rendered and returns one
`Rank` per process to start, head first; the control plane starts them in that order,
waits for the head, and supervises them as one group.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from corral.config import CorralConfig, Deployment
from corral.errors import ConfigError
from corral.runtime.base import Command

RAY_PORT = 6379
Role = Literal["head", "worker", "ray-head", "ray-worker"]
SIZE_FLAGS = {
    "tensor_parallel_size": ("--tensor-parallel-size", "-tp"),
    "pipeline_parallel_size": ("--pipeline-parallel-size", "-pp"),
}


@dataclass(frozen=True)
class Rank:
    """One process of a multi-node engine: where it runs, what it runs, and its role."""

    index: int
    host: str
    role: Role
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def serves_api(self) -> bool:
        """Whether this rank answers the OpenAI API (the head's `vllm serve`)."""
        return self.role == "head"


def with_sizes(argv: Sequence[str], dep: Deployment) -> list[str]:
    """`argv` plus the deployment's tensor/pipeline parallel sizes, unless already given."""
    out = list(argv)
    for attr, flags in SIZE_FLAGS.items():
        value = getattr(dep, attr)
        given = any(arg.partition("=")[0] in flags for arg in out)
        if value is not None and not given:
            out += [flags[0], str(value)]
    return out


def node_env(config: CorralConfig, name: str) -> dict[str, str]:
    """What every rank on host `name` needs to find the others: its interface and address."""
    host = config.host(name)
    # VLLM_HOST_IP takes an IP address; a host named by DNS leaves it to vLLM's own guess.
    env = {"VLLM_HOST_IP": host.address} if _is_ip(host.address) else {}
    if host.interface:
        env |= {"NCCL_SOCKET_IFNAME": host.interface, "GLOO_SOCKET_IFNAME": host.interface}
    return env


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def ranks(argv: Sequence[str], dep: Deployment, config: CorralConfig) -> list[Rank]:
    """The processes of `dep` in start order (head first); one single rank without `nodes`."""
    base = with_sizes(argv, dep)
    if len(dep.nodes) < 2:
        return [Rank(0, dep.host, "head", tuple(base), node_env(config, dep.host))]
    if dep.distributed_backend == "ray":
        return _ray_ranks(base, dep, config)
    return _mp_ranks(base, dep, config)


def _mp_ranks(base: list[str], dep: Deployment, config: CorralConfig) -> list[Rank]:
    head = config.host(dep.nodes[0]).address
    group = ["--distributed-executor-backend", "mp", "--nnodes", str(len(dep.nodes))]
    found = []
    for index, name in enumerate(dep.nodes):
        place = ["--node-rank", str(index), "--master-addr", head]
        place += ["--master-port", str(dep.master_port)]
        argv = [*base, *group, *place, *(["--headless"] if index else [])]
        role: Role = "head" if index == 0 else "worker"
        found.append(Rank(index, name, role, tuple(argv), node_env(config, name)))
    return found


def ray_executable(base: Sequence[str]) -> list[str]:
    """How to run `ray` beside the engine: the engine's interpreter, or `ray` on PATH."""
    if len(base) > 2 and base[1] == "-m" and "python" in base[0].rsplit("/", 1)[-1]:
        return [base[0], "-m", "ray.scripts.scripts"]
    return ["ray"]


def _ray_ranks(base: list[str], dep: Deployment, config: CorralConfig) -> list[Rank]:
    ray = ray_executable(base)
    head = config.host(dep.nodes[0]).address
    start_head = (*ray, "start", "--head", "--port", str(RAY_PORT))
    start_head += ("--node-ip-address", head, "--block")
    found = [Rank(0, dep.nodes[0], "ray-head", start_head, node_env(config, dep.nodes[0]))]
    for index, name in enumerate(dep.nodes[1:], start=1):
        address = config.host(name).address
        argv = (*ray, "start", "--address", f"{head}:{RAY_PORT}")
        argv += ("--node-ip-address", address, "--block")
        found.append(Rank(index, name, "ray-worker", argv, node_env(config, name)))
    serve = (*base, "--distributed-executor-backend", "ray")
    found.append(Rank(len(dep.nodes), dep.nodes[0], "head", serve, node_env(config, dep.nodes[0])))
    return found


def require_spannable(dep: Deployment) -> None:
    """A multi-node deployment must be a vLLM one with a parallel size that spans its nodes."""
    if not dep.nodes:
        return
    if dep.engine != "vllm":
        raise ConfigError(
            f"deployment {dep.name!r}: `nodes` needs engine vllm (corral renders vLLM's "
            f"multi-node commands), not {dep.engine}"
        )
    world = (dep.tensor_parallel_size or 1) * (dep.pipeline_parallel_size or 1)
    if world % len(dep.nodes):
        raise ConfigError(
            f"deployment {dep.name!r}: tensor × pipeline parallel size ({world}) must be a "
            f"multiple of the number of nodes ({len(dep.nodes)})",
            hint="vLLM splits the world evenly over nodes: e.g. two GB10s with one GPU each "
            "take tensor_parallel_size: 2",
        )


def rank_command(command: Command, rank: Rank) -> Command:
    """The runtime's command for one rank: its argv, and its environment (for a container,
    as `-e KEY=VALUE` before the image: NCCL/GLOO interface and host address, no secrets)."""
    if command.container is None:
        return replace(command, argv=rank.argv, env={**command.env, **rank.env})
    image = command.breaks[0] if command.breaks else len(command.argv)
    env = [part for key, value in rank.env.items() for part in ("-e", f"{key}={value}")]
    tail = rank.argv[len(command.argv) :]  # the rank's flags after the shared command
    argv = (*command.argv[:image], *env, *command.argv[image:], *tail)
    breaks = tuple(b + len(env) for b in command.breaks)
    return replace(command, argv=argv, breaks=breaks)
