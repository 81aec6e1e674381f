"""Which hosts are reachable right now: one watcher per remote host, for routing decisions.

A host that drops (its SSH master gone: the keep-alives stop being answered, about 2 s
after the link dies) is `down` at the next poll; the watcher then tries to relink every
`retry` seconds, restoring its port forwards on the same local ports, and is `up` again
once that works. The control plane asks `up(host)` before it reads an engine's silence as
a death: while a host is down its replicas are unroutable but nothing is restarted, and
when it comes back the engine that kept running there is routed again (same pid).

    watch = HostWatch({"pegasus": pegasus_host}, poll=0.5)
    task = asyncio.create_task(watch.run())
    watch.up("pegasus"); watch.changes          # [(time, host, "down" | "up"), ...]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class Linked(Protocol):
    """A host with a link that can drop and be made again (SshHost)."""

    def link_up(self) -> bool: ...

    def relink(self) -> bool: ...


@dataclass
class HostWatch:
    hosts: Mapping[str, Linked]
    poll: float = 0.5
    retry: float = 1.0
    clock: Callable[[], float] = time.monotonic
    changes: list[tuple[float, str, str]] = field(default_factory=list)
    _down: set[str] = field(default_factory=set)

    def up(self, name: str) -> bool:
        """False while `name` is known to be unreachable; hosts not watched are up."""
        return name not in self._down

    async def run(self) -> None:
        """Until cancelled: poll every host's link; relink the ones that dropped."""
        while True:
            await asyncio.gather(*(self._check(name, host) for name, host in self.hosts.items()))
            await asyncio.sleep(self.poll)

    async def _check(self, name: str, host: Linked) -> None:
        if name in self._down:
            if await asyncio.to_thread(host.relink):
                self._mark(name, "up")
            else:
                await asyncio.sleep(self.retry)
        elif not await asyncio.to_thread(host.link_up):
            self._mark(name, "down")

    def _mark(self, name: str, state: str) -> None:
        if state == "down":
            self._down.add(name)
        else:
            self._down.discard(name)
        self.changes.append((self.clock(), name, state))
