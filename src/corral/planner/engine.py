"""Which vLLM release the plan predicts, and the defaults that release picks.

The release families and what differs between them are data (`engine_versions.yaml`); the
batch-size tiers below are vLLM's `EngineArgs.get_batch_defaults` (vllm/engine/arg_utils.py)
for the OpenAI API server, which is how corral starts vLLM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from corral.errors import PlanError
from corral.hardware.profiles import HardwareProfile
from corral.planner.modelspec import DATA_DIR

GIB = 2**30


@dataclass(frozen=True)
class EngineFamily:
    family: str
    version: str
    tokens: Literal["blocks", "concurrency"]
    sliding_in_flight: Literal["batched", "in_flight"]
    default_gpu_memory_utilization: float
    verified: str


def parse_version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of '0.14.0', '0.14.0rc2.dev259', 'v0.25.1+cu130'."""
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        raise PlanError(f"engine version {text!r} is not a version like 0.14.0")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def engine_family(version: str, path: Path = DATA_DIR / "engine_versions.yaml") -> EngineFamily:
    wanted = parse_version(version)
    rows: list[dict[str, Any]] = yaml.safe_load(path.read_text())
    for row in rows:
        if parse_version(row["from"]) <= wanted < parse_version(row["until"]):
            return EngineFamily(
                row["family"], version, row["tokens"], row["sliding_in_flight"],
                float(row["default_gpu_memory_utilization"]), row["verified"],
            )  # fmt: skip
    known = ", ".join(f"{r['from']}..{r['until']}" for r in rows)
    raise PlanError(f"no KV formula known for vLLM {version} (covered: {known})")


def default_max_num_batched_tokens(profile: HardwareProfile, family: EngineFamily) -> int:
    """vLLM's API-server default when --max-num-batched-tokens is not given.

    GPUs whose memory NVML cannot report (GB10) fall to the lowest tier: vLLM catches the
    error and treats device memory as 0.
    """
    if profile.platform == "cpu":
        return 2048  # x world size; corral runs one CPU worker
    memory = profile.engine_visible_memory_gib if profile.nvml_memory else 0
    memory = memory or 0
    if memory >= 160 and family.family == "v0.32":
        return 16384
    if memory >= 70:
        return 8192
    return 2048


def in_flight_tokens(profile: HardwareProfile, family: EngineFamily, batched: int) -> int:
    """Tokens a sliding-window layer holds beyond its window (see engine_versions.yaml)."""
    if family.sliding_in_flight == "batched":
        return batched
    # 0.26+: max_concurrent_batches; async scheduling (2 batches) is on for GPUs and
    # switched off by the CPU platform (vllm/platforms/cpu.py).
    return batched * (1 if profile.platform == "cpu" else 2)


def default_block_size(profile: HardwareProfile) -> int:
    # CUDA: 16 (vllm/platforms/cuda.py); CPU: 128 (vllm/platforms/cpu.py).
    return 128 if profile.platform == "cpu" else 16
