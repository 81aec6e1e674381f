"""What an engine holds in memory, and whether a host's budget has room for one more.

    group_rss_gib(running.group())      # resident memory of the engine's processes, GiB

The figure is the sum of the resident set sizes of the engine's process group (vLLM's
API server, EngineCore and workers), read from /proc: local engines only. Shared pages
are counted once per process, so it errs high, the safe side for a budget.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["GIB", "group_rss_gib", "rss_bytes"]

GIB = 1024**3
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    """Resident bytes of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE


def group_rss_gib(pids: Iterable[int]) -> float:
    return sum(rss_bytes(pid) for pid in pids) / GIB
