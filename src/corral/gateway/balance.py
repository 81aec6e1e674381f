"""Pick a replica: least outstanding requests, skipping replicas whose breaker is open.

Circuit breaker per replica, with three states:

    closed ──(`failures` consecutive failures)──▶ open ──(`cooldown` seconds)──▶ half-open
      ▲                                                                            │
      └──────────────── the probe request succeeds ◀───────────────────────────────┘
                        (it fails: back to open for another cooldown)

In half-open exactly one request (the probe) is let through; others go elsewhere. A
failure is a connect error or a 5xx answer; a 4xx is the client's fault and counts as
success. All of it runs on the event loop thread, so no locks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from corral.fleet import Replica

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass
class Breaker:
    failures: int = 0
    state: str = CLOSED
    opened_at: float = 0.0
    probing: bool = False


class Balancer:
    """Outstanding-request counts and breakers, keyed by replica id."""

    def __init__(self, *, failures: int, cooldown: float, clock: Callable[[], float]) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self.clock = clock
        self.outstanding: dict[str, int] = {}
        self.breakers: dict[str, Breaker] = {}
        self._turn = itertools.count()

    def pick(self, candidates: Sequence[Replica], exclude: Sequence[str] = ()) -> Replica | None:
        """The available candidate with fewest outstanding requests (ties rotate)."""
        best: Replica | None = None
        best_load = 0
        count = len(candidates)
        start = next(self._turn) % count if count > 1 else 0
        for i in range(count):
            rep = candidates[(start + i) % count]
            if rep.id in exclude or not self._available(rep.id):
                continue
            load = self.outstanding.get(rep.id, 0)
            if best is None or load < best_load:
                best, best_load = rep, load
        if best is not None:
            self._claim_probe(best.id)
        return best

    def begin(self, replica_id: str) -> None:
        self.outstanding[replica_id] = self.outstanding.get(replica_id, 0) + 1

    def end(self, replica_id: str) -> None:
        self.outstanding[replica_id] = self.outstanding.get(replica_id, 1) - 1

    def succeeded(self, replica_id: str) -> None:
        breaker = self.breakers.get(replica_id)
        if breaker is not None and (breaker.failures or breaker.state != CLOSED):
            self.breakers[replica_id] = Breaker()

    def failed(self, replica_id: str) -> None:
        breaker = self.breakers.setdefault(replica_id, Breaker())
        breaker.failures += 1
        breaker.probing = False
        if breaker.state == HALF_OPEN or breaker.failures >= self.threshold:
            breaker.state = OPEN
            breaker.opened_at = self.clock()

    def abandon(self, replica_id: str) -> None:
        """The request ended with no verdict (client left): free the probe slot if it held it."""
        breaker = self.breakers.get(replica_id)
        if breaker is not None:
            breaker.probing = False

    def state(self, replica_id: str) -> str:
        breaker = self.breakers.get(replica_id)
        if breaker is None:
            return CLOSED
        if breaker.state == OPEN and self.clock() - breaker.opened_at >= self.cooldown:
            return HALF_OPEN
        return breaker.state

    def _available(self, replica_id: str) -> bool:
        breaker = self.breakers.get(replica_id)
        if breaker is None or breaker.state == CLOSED:
            return True
        if self.state(replica_id) == HALF_OPEN:
            return not breaker.probing
        return False

    def _claim_probe(self, replica_id: str) -> None:
        breaker = self.breakers.get(replica_id)
        if breaker is not None and breaker.state != CLOSED and self.state(replica_id) == HALF_OPEN:
            breaker.state = HALF_OPEN
            breaker.probing = True
