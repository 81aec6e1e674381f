"""Hardware profiles as data: one YAML file per kind in `hardware/profiles/`.

A profile says what a planner needs to know about a machine that it cannot measure from
here: the memory the engine sizes against, the memory bandwidth, and the quirks that change
vLLM's defaults (NVML that cannot report memory on GB10, the MXFP4 kernel a compute
capability gets). Detection (`hardware.detect`) names the kind; this module only loads data.
Add a machine by dropping a YAML file next to the others; `load_profile` validates it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from corral.errors import HardwareError

PROFILES_DIR = Path(__file__).with_name("profiles")


class HardwareProfile(BaseModel):
    """One machine kind. Memory in GiB (2**30 bytes), bandwidth in GB/s (10**9 bytes/s)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    platform: Literal["cuda", "cpu"]
    compute_capability: str | None = None
    memory_gib: float | None = None
    engine_visible_memory_gib: float | None = None
    bandwidth_gb_s: float | None = None
    unified_memory: bool = False
    nvml_memory: bool = True
    mxfp4_moe_kernel: Literal["marlin", "triton", "cutlass"] | None = None
    non_kv_overhead_gib: float = 0.0
    default_vllm: str = "0.32.0"


def profile_names(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name: str, directory: Path = PROFILES_DIR) -> HardwareProfile:
    """The profile called `name`; a HardwareError names the known ones when it is missing."""
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(profile_names(directory)) or "none"
        raise HardwareError(
            f"no hardware profile named {name!r} (known: {known})",
            hint=f"pick one of those, or add {path} (copy gb10.yaml and edit it)",
        )
    try:
        data = yaml.safe_load(path.read_text())
        return HardwareProfile.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise HardwareError(f"hardware profile {path} is invalid: {exc}") from exc
