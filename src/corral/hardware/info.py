"""What corral knows about a machine: its GPUs, CPU and memory, as plain data."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MemorySource = Literal["nvml", "nvidia-smi", "system"]


class GpuInfo(BaseModel):
    """One GPU. `memory_bytes` comes from `memory_source`; `system` means unified memory."""

    index: int
    name: str
    uuid: str | None = None
    compute_capability: str | None = Field(default=None, description="e.g. '12.1' on GB10")
    memory_bytes: int | None = None
    memory_source: MemorySource | None = None
    unified_memory: bool = False


class CpuInfo(BaseModel):
    model: str
    arch: str
    logical_cores: int
    physical_cores: int | None = None
    flags: list[str] = Field(default_factory=list, description="the flags engines care about")


class HardwareInfo(BaseModel):
    """A machine as recipes and the planner see it; `kind` is what recipes match on."""

    kind: str
    gpus: list[GpuInfo] = Field(default_factory=list)
    driver_version: str | None = None
    cuda_version: str | None = None
    cpu: CpuInfo
    ram_bytes: int
    notes: list[str] = Field(default_factory=list)

    @property
    def gpu_name(self) -> str | None:
        return self.gpus[0].name if self.gpus else None

    def summary(self) -> str:
        """One line: 'gb10: 1× NVIDIA GB10 (SM 12.1, 121.7 GiB unified)'."""
        if not self.gpus:
            return f"{self.kind}: {self.cpu.model}, {self.cpu.logical_cores} cores"
        gpu = self.gpus[0]
        mem = f"{gpu.memory_bytes / 2**30:.1f} GiB" if gpu.memory_bytes else "memory unknown"
        if gpu.unified_memory:
            mem += " unified"
        sm = f"SM {gpu.compute_capability}, " if gpu.compute_capability else ""
        return f"{self.kind}: {len(self.gpus)}× {gpu.name} ({sm}{mem})"
