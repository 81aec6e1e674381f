"""Put the sources together: NVML (or an nvidia-smi report), the CPU, and system memory.

The rule that matters: when a GPU's memory can't be read (GB10 and other unified-memory
parts answer NOT_SUPPORTED), the GPU gets the system's memory and is marked unified —
that is the memory the engine will actually allocate from.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from corral.hardware.cpu import local_cpu
from corral.hardware.info import CpuInfo, GpuInfo, HardwareInfo
from corral.hardware.nvidia_smi import SmiReport
from corral.hardware.nvml import NvmlSource, cuda_version_text, open_nvml


def load_kinds() -> list[dict[str, Any]]:
    """The GPU-name → kind table from hardware/kinds.yaml."""
    text = resources.files("corral.hardware").joinpath("kinds.yaml").read_text("utf-8")
    kinds: list[dict[str, Any]] = yaml.safe_load(text)
    return kinds


def kind_of(gpu_name: str | None, kinds: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not gpu_name:
        return None
    for entry in kinds:
        if any(part.lower() in gpu_name.lower() for part in entry["name_contains"]):
            return entry
    return None


def gpus_from_nvml(nvml: NvmlSource) -> list[GpuInfo]:
    gpus = []
    for index in range(nvml.device_count()):
        cc = nvml.compute_capability(index)
        memory = nvml.memory_total(index)
        gpus.append(
            GpuInfo(
                index=index,
                name=nvml.name(index),
                uuid=nvml.uuid(index),
                compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
                memory_bytes=memory,
                memory_source="nvml" if memory is not None else None,
            )
        )
    return gpus


def _fill_unified_memory(gpus: list[GpuInfo], ram_bytes: int, notes: list[str]) -> None:
    for gpu in gpus:
        if gpu.memory_bytes is None and ram_bytes:
            gpu.memory_bytes = ram_bytes
            gpu.memory_source = "system"
            gpu.unified_memory = True
            notes.append(
                f"GPU {gpu.index} ({gpu.name}): NVML cannot report its memory "
                "(NOT_SUPPORTED); using system memory, as on unified-memory parts"
            )


def assemble(
    gpus: list[GpuInfo],
    cpu: CpuInfo,
    ram_bytes: int,
    *,
    driver_version: str | None = None,
    cuda_version: str | None = None,
) -> HardwareInfo:
    """One HardwareInfo from already-read parts (the pure core of detection)."""
    notes: list[str] = []
    _fill_unified_memory(gpus, ram_bytes, notes)
    entry = kind_of(gpus[0].name if gpus else None, load_kinds())
    if entry and entry.get("unified_memory"):
        for gpu in gpus:
            gpu.unified_memory = True
    kind = entry["kind"] if entry else ("gpu" if gpus else "cpu")
    return HardwareInfo(
        kind=kind,
        gpus=gpus,
        driver_version=driver_version,
        cuda_version=cuda_version,
        cpu=cpu,
        ram_bytes=ram_bytes,
        notes=notes,
    )


def detect(nvml: NvmlSource | None, cpu: CpuInfo, ram_bytes: int) -> HardwareInfo:
    """Detection from an NVML-like source (live or recorded) plus CPU and RAM."""
    if nvml is None:
        return assemble([], cpu, ram_bytes)
    return assemble(
        gpus_from_nvml(nvml),
        cpu,
        ram_bytes,
        driver_version=nvml.driver_version(),
        cuda_version=cuda_version_text(nvml.cuda_driver_version()),
    )


def detect_from_smi(report: SmiReport, cpu: CpuInfo, ram_bytes: int) -> HardwareInfo:
    """Detection from a parsed nvidia-smi capture instead of NVML."""
    return assemble(
        list(report.gpus),
        cpu,
        ram_bytes,
        driver_version=report.driver_version,
        cuda_version=report.cuda_version,
    )


def detect_local() -> HardwareInfo:
    """This machine: NVML when the NVIDIA driver is present, /proc for CPU and memory."""
    cpu, ram = local_cpu()
    with open_nvml() as nvml:
        return detect(nvml, cpu, ram)
