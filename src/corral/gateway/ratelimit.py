"""Per-key limits: requests per minute, tokens per minute and per day, concurrent requests.

    limiter = KeyLimiter(clock=time.monotonic)
    lease = limiter.admit(principal)     # HttpError 429 with Retry-After, or a lease
    ...                                  # the request runs
    limiter.release(lease, tokens=1234)  # frees the concurrency slot, charges the tokens

Windows are sliding, kept as per-bucket sums (1 s buckets for a minute, 1 min buckets for
a day), so memory per key is bounded (60 + 1,440 buckets) and a check is a few additions.
Tokens are known only when an answer ends, so a token limit refuses the request *after*
the one that crossed it: a stream in flight always finishes, the next request gets the
429. `Retry-After` is the time until enough of the window has expired to be under the
limit again, rounded up to whole seconds.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from corral.config import KeyLimits
from corral.gateway.errors import HttpError


class Window:
    """A sliding sum over `span` seconds in buckets of `bucket` seconds."""

    def __init__(self, span: float, bucket: float) -> None:
        self.span = span
        self.bucket = bucket
        self.buckets: deque[list[float]] = deque()  # [bucket start, amount]
        self.total = 0.0

    def add(self, now: float, amount: float) -> None:
        start = now - now % self.bucket
        if self.buckets and self.buckets[-1][0] == start:
            self.buckets[-1][1] += amount
        else:
            self.buckets.append([start, amount])
        self.total += amount

    def sum(self, now: float) -> float:
        while self.buckets and self.buckets[0][0] + self.span <= now:
            self.total -= self.buckets.popleft()[1]
        return self.total

    def wait(self, now: float, limit: float) -> float:
        """Seconds until the sum drops below `limit` (0 if it already is)."""
        left = self.sum(now)
        for start, amount in self.buckets:
            if left < limit:
                break
            left -= amount
            if left < limit:
                return max(0.0, start + self.span - now)
        return 0.0 if left < limit else self.span


@dataclass
class KeyState:
    requests: Window = field(default_factory=lambda: Window(60.0, 1.0))
    minute_tokens: Window = field(default_factory=lambda: Window(60.0, 1.0))
    day_tokens: Window = field(default_factory=lambda: Window(86400.0, 60.0))
    in_flight: int = 0


@dataclass(frozen=True)
class Lease:
    key: str
    state: KeyState | None


NO_LEASE = Lease("", None)


class KeyLimiter:
    """Counters per key name; keys without limits cost one attribute check."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.states: dict[str, KeyState] = {}
        self.refused: dict[tuple[str, str], int] = {}  # (key, limit) → count, for /metrics

    def admit(self, key: str, limits: KeyLimits | None) -> Lease:
        """A lease for one request, or HttpError 429 naming the limit. None: unlimited."""
        if limits is None:
            return NO_LEASE
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = KeyState()
        now = self.clock()
        self._check(key, limits, state, now)
        state.in_flight += 1
        state.requests.add(now, 1)
        return Lease(key, state)

    def release(self, lease: Lease, tokens: int = 0) -> None:
        state = lease.state
        if state is None:
            return
        state.in_flight -= 1
        if tokens:
            now = self.clock()
            state.minute_tokens.add(now, tokens)
            state.day_tokens.add(now, tokens)

    def _check(self, key: str, limits: KeyLimits, state: KeyState, now: float) -> None:
        if limits.concurrent is not None and state.in_flight >= limits.concurrent:
            self._refuse(key, "concurrent", limits.concurrent, "requests in flight", 1.0)
        checks = (
            ("requests_per_minute", limits.requests_per_minute, state.requests, "requests"),
            ("tokens_per_minute", limits.tokens_per_minute, state.minute_tokens, "tokens"),
            ("tokens_per_day", limits.tokens_per_day, state.day_tokens, "tokens"),
        )
        for name, limit, window, unit in checks:
            if limit is not None and window.sum(now) >= limit:
                self._refuse(key, name, limit, unit, window.wait(now, limit))

    def _refuse(self, key: str, name: str, limit: int, unit: str, wait: float) -> None:
        self.refused[(key, name)] = self.refused.get((key, name), 0) + 1
        retry = max(1, math.ceil(wait))
        raise HttpError(
            429,
            f"the API key `{key}` is over its limit of {limit} {unit} ({name}); retry in {retry} s",
            param=name,
            code="key_rate_limited",
            headers={"Retry-After": str(retry)},
        )


def limited(limits: KeyLimits | None) -> KeyLimits | None:
    """`limits` if any limit is set, else None (what a principal carries: cheap to test)."""
    if limits is None:
        return None
    values = (
        limits.requests_per_minute,
        limits.tokens_per_minute,
        limits.tokens_per_day,
        limits.concurrent,
    )
    return limits if any(v is not None for v in values) else None
