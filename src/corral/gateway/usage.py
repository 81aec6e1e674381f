"""Per-key usage, counted on the event loop and written to the ledger in batches.

    recorder = UsageRecorder(sink=LedgerUsage(ledger), every=5.0)
    await recorder.start()               # a task that flushes every `every` seconds
    recorder.add("ci", "smollm2", 200, prompt=12, completion=30)   # per request: a dict add
    await recorder.stop()                # flushes what is left

The hot path only adds to a dict keyed by (minute, key, model); the flush swaps the dict
out and writes it in one transaction on a worker thread (`asyncio.to_thread`), so SQLite
never blocks a request. A failed write is logged and its counts are merged back for the
next flush, so a busy ledger (`database is locked`) loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from corral.ledger.db import Ledger

log = logging.getLogger("corral.gateway")

Slot = tuple[float, str, str]  # (minute, key, model)
COLUMNS = ("requests", "errors", "refused", "prompt_tokens", "completion_tokens")
UPSERT = """
INSERT INTO key_usage (minute, key_name, model, requests, errors, refused, prompt_tokens,
                       completion_tokens)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (minute, key_name, model) DO UPDATE SET
    requests = requests + excluded.requests, errors = errors + excluded.errors,
    refused = refused + excluded.refused, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
    completion_tokens = completion_tokens + excluded.completion_tokens
"""
SUMMARY = """
SELECT key_name, model, SUM(requests) AS requests, SUM(errors) AS errors,
       SUM(refused) AS refused, SUM(prompt_tokens) AS prompt_tokens,
       SUM(completion_tokens) AS completion_tokens
FROM key_usage WHERE minute >= ? AND (? IS NULL OR key_name = ?)
GROUP BY key_name, model ORDER BY SUM(prompt_tokens + completion_tokens) DESC
"""


class UsageSink(Protocol):
    def write(self, rows: dict[Slot, list[int]]) -> None: ...


@dataclass(frozen=True)
class UsageRow:
    key_name: str
    model: str
    requests: int
    errors: int
    refused: int
    prompt_tokens: int
    completion_tokens: int


class LedgerUsage:
    """The ledger's `key_usage` table (migration 0010)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def write(self, rows: dict[Slot, list[int]]) -> None:
        with self.ledger.transaction() as conn:
            conn.executemany(UPSERT, [(*slot, *counts) for slot, counts in rows.items()])

    def summary(self, since: float, key: str | None = None) -> list[UsageRow]:
        """Totals per key and model since `since` (epoch seconds), busiest first."""
        rows = self.ledger.conn.execute(SUMMARY, (since, key, key)).fetchall()
        return [UsageRow(r["key_name"], r["model"], *(int(r[c]) for c in COLUMNS)) for r in rows]


class UsageRecorder:
    """Counts per (minute, key, model) in memory; a background task writes them out."""

    def __init__(
        self, sink: UsageSink | None, every: float = 5.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.sink = sink
        self.every = every
        self.clock = clock
        self.pending: dict[Slot, list[int]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, key: str, model: str, status: int, prompt: int = 0, completion: int = 0) -> None:
        if self.sink is None:
            return
        now = self.clock()
        slot = (now - now % 60.0, key, model)
        counts = self.pending.get(slot)
        if counts is None:
            counts = self.pending[slot] = [0, 0, 0, 0, 0]
        counts[0] += 1
        counts[1] += status >= 500 or status == 499
        counts[2] += status == 429
        counts[3] += prompt
        counts[4] += completion

    async def start(self) -> None:
        if self.sink is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="corral-usage-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        if self.sink is None or not self.pending:
            return
        rows, self.pending = self.pending, {}
        try:
            await asyncio.to_thread(self.sink.write, rows)
        except Exception as exc:  # the ledger is busy or broken: keep the counts for later
            log.warning("could not record key usage (%s); will retry", exc)
            self._merge(rows)

    def _merge(self, rows: dict[Slot, list[int]]) -> None:
        for slot, counts in rows.items():
            mine = self.pending.setdefault(slot, [0, 0, 0, 0, 0])
            for i, value in enumerate(counts):
                mine[i] += value

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.flush()
