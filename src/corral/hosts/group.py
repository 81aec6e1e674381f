"""A multi-node engine run as one: every rank lives, or the whole group is ended.

vLLM's head answers `/health` even after a worker on another node died (the worker's
absence shows only when a request needs it), so the head's health alone is not trusted:
the group watches every rank's process on its own host. `GroupRuntime` is a `Runtime`
like the others, so `corral serve`'s supervisor runs a group through the one pipeline
(control/pipeline.py) and its rules apply to the group as a unit:

    launch:   ranks in order (multinode.ranks: head first, or the Ray head, its workers,
              then `vllm serve`), each through its own host's runtime (process or docker),
              each one seen alive `settle` seconds before the next starts; a rank that
              dies at once ends the ranks already started, and the launch fails naming it
    watch:    `alive()` is every rank's process alive; `group()` every rank's processes;
              a host that can't be reached raises HostError (unknown, not dead: the
              supervisor rides out a partition without restarting)
    failure:  any rank dead → the supervisor stops the group (`stop()` ends every rank,
              all at once) and starts it again, head first, after its backoff
    adopt:    after a corral restart, the group is found again from the ledger's
              `run_hosts` rows of the head's run (every rank by pid and start time)

All calls block (SSH commands); async code runs them in a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from corral.config import CorralConfig, Deployment, DockerOptions
from corral.errors import EngineError
from corral.hosts.multinode import Rank, Role, rank_command, ranks, require_spannable
from corral.ledger.db import Ledger
from corral.ledger.hosts import RunHost, run_hosts
from corral.recipes.render import EngineLaunch
from corral.runtime.base import Command, Identity, Running, Runtime
from corral.runtime.docker import DockerRuntime
from corral.runtime.host import Host
from corral.runtime.process import DetachedRuntime

__all__ = ["GroupRunning", "GroupRuntime", "Member", "adopt_ranks", "rank_log"]


@dataclass(frozen=True)
class Member:
    """One started rank: what it is, and its engine on its host."""

    rank: Rank
    running: Running
    host: Host


def rank_log(log_path: Path, rank: Rank) -> Path:
    """Where a rank's output goes: the run's log for the API rank, a sibling for others."""
    if rank.serves_api:
        return log_path
    return log_path.with_name(f"{log_path.stem}.rank{rank.index}-{rank.host}{log_path.suffix}")


@dataclass
class GroupRunning:
    """The ranks of one multi-node engine as one `Running` (the API rank's identity and log)."""

    members: list[Member]
    gone: list[str] = field(default_factory=list)  # what `alive()` last found dead
    identity: Identity = field(init=False)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.identity = self.head.running.identity
        self.log_path = self.head.running.log_path

    @property
    def head(self) -> Member:
        return next(m for m in self.members if m.rank.serves_api)

    @property
    def hosts(self) -> list[Host]:
        """Every host a rank runs on, the head's first (each once)."""
        return list({id(m.host): m.host for m in [self.head, *self.members]}.values())

    def alive(self) -> bool:
        """Every rank's process lives (HostError when a rank's host can't be asked)."""
        self.gone = [_describe(m) for m in self.members if not m.running.alive()]
        return not self.gone

    def death(self) -> str:
        """Why the group is dead, naming the ranks (after `alive()` said False)."""
        return f"{'; '.join(self.gone)}: the whole group is stopped and started again"

    def exit_code(self) -> int | None:
        dead = [m for m in self.members if _describe(m) in self.gone] or [self.head]
        return dead[0].running.exit_code()

    def group(self) -> list[int]:
        return [pid for member in self.members for pid in member.running.group()]

    def lines(self, keep_going: Callable[[], bool]) -> Iterator[str]:
        """The API rank's output (its startup is the group's); others log beside it."""
        return self.head.running.lines(keep_going)

    def stop(self, grace: float = 15.0) -> bool:
        """End every rank at once (each SIGTERM, SIGKILL after `grace`); False if none ran."""
        with ThreadPoolExecutor(max_workers=len(self.members)) as pool:
            stopped = list(pool.map(lambda m: m.running.stop(grace), self.members))
        return any(stopped)


def _describe(member: Member) -> str:
    rank = member.rank
    return f"rank {rank.index} ({rank.role}) on {rank.host} is gone"


@dataclass
class GroupRuntime:
    """A `nodes: [...]` deployment: one runtime per node, the ranks started in order.

    `command()` renders every rank's command (kept for `launch`) and returns the API
    rank's, which the ledger records and `corral render` prints with the others.
    """

    deployment: Deployment
    config: CorralConfig
    runtimes: Mapping[str, Runtime]  # node name → the runtime on that host
    ledger: Ledger
    settle: float = 1.0  # seconds a rank must stay alive before the next starts
    planned: list[tuple[Rank, Command]] = field(default_factory=list)
    kind: str = field(init=False)
    host: Host = field(init=False)
    outlives_corral: bool = field(init=False)

    def __post_init__(self) -> None:
        head = self.head_runtime
        self.kind, self.host, self.outlives_corral = head.kind, head.host, head.outlives_corral

    @property
    def head_runtime(self) -> Runtime:
        return self.runtimes[self.deployment.nodes[0]]

    def command(self, launch: EngineLaunch, options: DockerOptions) -> Command:
        require_spannable(self.deployment)
        base = self.head_runtime.command(launch, options)
        self.planned = [(rank, rank_command(base, rank))
                        for rank in ranks(base.argv, self.deployment, self.config)]  # fmt: skip
        return next(command for rank, command in self.planned if rank.serves_api)

    def launch(self, command: Command, log_path: Path) -> Running:
        """Start every rank in order; EngineError (the ranks started so far ended) when a
        rank fails to start or dies within `settle` seconds."""
        del command  # the API rank's, from `command()`: `planned` holds every rank's
        members: list[Member] = []
        try:
            for rank, rank_cmd in self.planned:
                members.append(self._start(rank, rank_cmd, log_path))
        except EngineError:
            GroupRunning(members).stop(grace=5.0)
            raise
        return GroupRunning(members)

    def _start(self, rank: Rank, command: Command, log_path: Path) -> Member:
        runtime = self.runtimes[rank.host]
        member = Member(rank, runtime.launch(command, rank_log(log_path, rank)), runtime.host)
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline:
            if not member.running.alive():
                raise EngineError(
                    f"{self.deployment.name}: rank {rank.index} ({rank.role}) on {rank.host} "
                    f"exited at once (code {member.running.exit_code()})",
                    hint=f"its log on {rank.host}: {member.running.log_path}; `corral render "
                    f"{self.deployment.name}` shows each rank's command",
                )
            time.sleep(0.2)
        return member

    def placements(self, running: GroupRunning) -> list[RunHost]:
        """The ledger's `run_hosts` rows for a launched group (run id filled in later)."""
        return [RunHost(0, m.rank.host, self.config.host(m.rank.host).address, m.rank.index,
                        m.rank.role, m.running.identity.pid, m.running.identity.pid_started_at)
                for m in running.members]  # fmt: skip

    def adopt(self, identity: Identity, log_path: Path) -> Running | None:
        """The group whose API rank is `identity`, every rank still alive; else None."""
        row = self.ledger.conn.execute(
            "SELECT run_id FROM run_hosts WHERE host = ? AND pid = ? ORDER BY run_id DESC",
            (self.deployment.nodes[0], identity.pid),
        ).fetchone()
        if row is None:
            return None
        hosts = {name: runtime.host for name, runtime in self.runtimes.items()}
        rows = run_hosts(self.ledger, int(row[0]))
        return adopt_ranks(rows, hosts.__getitem__, identity.container, log_path)


def adopt_ranks(rows: list[RunHost], hosts: Callable[[str], Host], container: str | None,
                log_path: Path, docker: str = "docker") -> GroupRunning | None:  # fmt: skip
    """A group found again from its `run_hosts` rows: every rank by pid and start time on
    its host (or by container name, the same on every node); None when any rank is gone."""
    members = []
    for row in rows:
        host = hosts(row.host)
        rank = Rank(row.rank, row.host, cast(Role, row.role), ())
        identity = Identity(row.pid, row.pid_started_at, container)
        runtime: Runtime = DockerRuntime(host, docker) if container else DetachedRuntime(host)
        running = runtime.adopt(identity, rank_log(log_path, rank))
        if running is None:
            return None
        members.append(Member(rank, running, host))
    return GroupRunning(members)
