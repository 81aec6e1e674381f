"""Bounded in-flight requests per deployment, with a bounded FIFO queue in front.

A request enters at once while fewer than `max_in_flight` are running; otherwise it waits
in a queue of at most `max_queue` for up to `queue_timeout` seconds. A full queue or a
timed-out wait is a 429 with `Retry-After`. Leaving hands the slot straight to the oldest
waiter, so a slot is never both free and wanted.

Race handled: a waiter can be handed a slot in the same loop iteration in which its wait
is cancelled (client gone) or times out; it then gives the slot back before raising.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from corral.gateway.errors import HttpError

RETRY_AFTER_SECONDS = "1"


@dataclass
class Gate:
    """One deployment's counters. `in_flight` counts holders of a slot."""

    in_flight: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    @property
    def queued(self) -> int:
        return len(self.waiters)


class Admission:
    """Gates keyed by served name."""

    def __init__(self) -> None:
        self.gates: dict[str, Gate] = {}

    def gate(self, name: str) -> Gate:
        gate = self.gates.get(name)
        if gate is None:
            gate = self.gates[name] = Gate()
        return gate

    async def enter(self, name: str, limit: int, max_queue: int, timeout: float) -> None:
        """Take a slot of deployment `name`, waiting in its queue if needed; 429 if full."""
        gate = self.gate(name)
        if gate.in_flight < limit and not gate.waiters:
            gate.in_flight += 1
            return
        if len(gate.waiters) >= max_queue:
            raise _busy(name, "its queue is full")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        gate.waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            self._withdraw(name, gate, waiter)
            if isinstance(exc, TimeoutError):
                raise _busy(name, f"no slot freed within {timeout:g} s") from None
            raise

    def leave(self, name: str) -> None:
        """Give the slot to the oldest live waiter, or free it."""
        gate = self.gates[name]
        while gate.waiters:
            waiter = gate.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        gate.in_flight -= 1

    def _withdraw(self, name: str, gate: Gate, waiter: asyncio.Future[None]) -> None:
        if waiter.done():
            self.leave(name)  # it was handed a slot as it gave up: pass the slot on
            return
        waiter.cancel()
        if waiter in gate.waiters:
            gate.waiters.remove(waiter)


def _busy(name: str, why: str) -> HttpError:
    return HttpError(
        429,
        f"deployment `{name}` is at its in-flight limit and {why}; retry shortly",
        code="too_many_requests",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )
