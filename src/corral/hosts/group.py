"""A multi-node engine supervised as one unit: every rank lives, or the group restarts.

vLLM's head answers `/health` even after a worker on another node died (the worker's
absence shows only when a request needs it), so the head's health alone is not trusted:
`RankGroup` watches every rank's process on its own host. The rules:

    start:    ranks in order (multinode.ranks: head first, or the Ray head, its workers,
              then `vllm serve`), each once the one before it exists; then the caller's
              readiness check on the head's API
    watch:    `dead()` lists the ranks whose process is gone; a host that can't be reached
              counts as unknown, not dead (a partition is not a crash)
    failure:  any rank dead → every rank stopped (SIGTERM to each group, SIGKILL after the
              grace period), then the whole group started again with backoff

States: stopped → starting → running → (a rank died) → restarting → starting ...; `stop()`
from any state ends every rank. All calls block (SSH commands); run them in a thread.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from corral.errors import EngineError, HostError
from corral.hosts.multinode import Rank


class GroupHost(Protocol):
    """What the group needs of a host (LocalHost and SshHost both answer it)."""

    name: str

    def spawn(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path, *, outlive: bool
    ) -> Spawned: ...

    def alive(self, pid: int, started_at: float | None) -> bool: ...

    def group(self, pgid: int) -> list[int]: ...

    def signal_group(self, pgid: int, sig: signal.Signals) -> None: ...


class Spawned(Protocol):
    @property
    def pid(self) -> int: ...

    @property
    def started_at(self) -> float | None: ...


@dataclass
class Member:
    rank: Rank
    host: GroupHost
    pid: int | None = None
    started_at: float | None = None


@dataclass
class RankGroup:
    """The ranks of one multi-node engine, started, watched and stopped together."""

    members: list[Member]
    log_dir: Path
    ready: Callable[[], bool]
    grace: float = 15.0
    backoff: float = 1.0  # seconds before the first restart, doubling, at most 60
    restarts: int = 0
    events: list[str] = field(default_factory=list)

    def start(self, *, timeout: float = 600.0) -> None:
        """Start every rank in order, then wait until `ready()` (the head's API) says so."""
        for member in self.members:
            self._spawn(member)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.dead():
                raise EngineError(f"a rank died while the group started: {self.events[-1]}")
            if time.monotonic() > deadline:
                raise EngineError(f"the group's head was not ready within {timeout:.0f} s")
            time.sleep(0.2)

    def _spawn(self, member: Member) -> None:
        rank = member.rank
        log = self.log_dir / f"rank-{rank.index}" / f"{rank.role}.log"
        spawned = member.host.spawn(rank.argv, rank.env, log, outlive=True)
        member.pid, member.started_at = spawned.pid, spawned.started_at
        self.events.append(f"rank {rank.index} ({rank.role}) started on {rank.host}")

    def dead(self) -> list[Member]:
        """Ranks whose process is gone; an unreachable host's ranks are not counted."""
        gone = []
        for member in self.members:
            try:
                if member.pid is None or not member.host.alive(member.pid, member.started_at):
                    gone.append(member)
            except HostError:
                continue
        for member in gone:
            self.events.append(f"rank {member.rank.index} on {member.rank.host} is gone")
        return gone

    def stop(self) -> None:
        """End every rank: SIGTERM to each process group, SIGKILL after the grace period."""
        for member in self.members:
            self._signal(member, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while any(self._left(m) for m in self.members) and time.monotonic() < deadline:
            time.sleep(0.2)
        for member in self.members:
            if self._left(member):
                self._signal(member, signal.SIGKILL)
        for member in self.members:
            member.pid = member.started_at = None

    def _signal(self, member: Member, sig: signal.Signals) -> None:
        if member.pid is not None:
            member.host.signal_group(member.pid, sig)

    def _left(self, member: Member) -> bool:
        return member.pid is not None and bool(member.host.group(member.pid))

    def restart(self, *, timeout: float = 600.0) -> None:
        """Stop all ranks and start the group again (what any rank's death leads to)."""
        self.restarts += 1
        self.events.append(f"restarting the whole group (restart {self.restarts})")
        self.stop()
        time.sleep(min(self.backoff * 2 ** (self.restarts - 1), 60.0))
        self.start(timeout=timeout)

    def watch_once(self, *, timeout: float = 600.0) -> bool:
        """One supervision step: restart the group if a rank died; True if it did."""
        if not self.dead():
            return False
        self.restart(timeout=timeout)
        return True
