"""What an engine holds in memory, and whether a host's budget has room for one more.

    group_rss_gib(running.group())      # resident memory of the engine's processes, GiB
    memory_of(dep.memory_gib, facts)    # (5.0, "memory_gib in the config") for status
    host_budget_gib(host)               # memory_budget_gib, else a unified box's usable memory

The figure is the sum of the resident set sizes of the engine's process group (vLLM's
API server, EngineCore and workers), read from /proc: local engines only. Shared pages
are counted once per process, so it errs high, the safe side for a budget.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from corral.config import Host
from corral.hardware.profiles import load_profile, profile_names
from corral.planner.engine import engine_family

__all__ = [
    "GIB", "PEAK_FACT", "group_rss_gib", "host_budget_gib", "memory_of", "rss_bytes",
    "unified_budget_gib",
]  # fmt: skip

GIB = 1024**3
PAGE = os.sysconf("SC_PAGE_SIZE")
PEAK_FACT = "memory_peak_gib"
"""The fact a supervised run records: the highest group RSS measured while it ran."""


def rss_bytes(pid: int) -> int:
    """Resident bytes of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE


def group_rss_gib(pids: Iterable[int]) -> float:
    return sum(rss_bytes(pid) for pid in pids) / GIB


def _gib(text: str | None) -> float | None:
    """'4.31 GiB' (a fact as `corral status` reads it) → 4.31."""
    try:
        return float(text.split()[0]) if text else None
    except ValueError:
        return None


def memory_of(config_gib: float | None, facts: Mapping[str, str]) -> tuple[float, str] | None:
    """What a deployment holds (or would need) and where the figure comes from: the larger
    of the config's `memory_gib` and the peak measured in its last run, else the weights +
    KV cache its engine logged; the same order `Supervisor.memory_gib` places by."""
    peak = _gib(facts.get(PEAK_FACT))
    if config_gib is not None and (peak is None or config_gib >= peak):
        return config_gib, "memory_gib in the config"
    if peak is not None:
        return peak, "peak measured in its last run"
    logged = [_gib(facts.get(k)) for k in ("model_load_gib", "kv_cache_memory_gib")]
    if all(v is None for v in logged):
        return None
    return sum(v or 0.0 for v in logged), "weights + KV cache its engine logged"


def host_budget_gib(host: Host | None) -> float | None:
    """What the deployments on `host` may hold together: its `memory_budget_gib`, else
    for a unified-memory kind (GB10) the planner's margin of the memory the engine sees."""
    if host is None:
        return None
    if host.memory_budget_gib is not None:
        return host.memory_budget_gib
    return unified_budget_gib(host.hardware)


def unified_budget_gib(hardware: str | None) -> float | None:
    """A unified-memory box counts system memory as the GPU's, less the planner's margin:
    its engine's default gpu_memory_utilization of `engine_visible_memory_gib` (GB10:
    0.90 x 121.69 GiB for vLLM 0.14). None for other kinds (their budget is set)."""
    if hardware is None or hardware not in profile_names():
        return None
    profile = load_profile(hardware)
    if not profile.unified_memory or not profile.engine_visible_memory_gib:
        return None
    util = engine_family(profile.default_vllm).default_gpu_memory_utilization
    return round(util * profile.engine_visible_memory_gib, 2)
