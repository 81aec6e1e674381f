"""CPU model, cores, flags and RAM from /proc text (passed in, so tests use recorded text)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from corral.hardware.info import CpuInfo

# Flags that change what an engine can do: vLLM's CPU backend wants AVX-512 (and uses
# AMX for bf16 when present); llama.cpp builds differ by them (docs/engines.md: AMX faults
# on some virtual machines even when advertised).
INTERESTING_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
    "sve2",
)


def parse_meminfo(text: str) -> dict[str, int]:
    """`MemTotal:  127600748 kB` lines → {'MemTotal': bytes}; other lines are ignored."""
    found: dict[str, int] = {}
    for match in re.finditer(r"^\s*(\w+):\s+(\d+)\s*kB\s*$", text, re.MULTILINE):
        found[match.group(1)] = int(match.group(2)) * 1024
    return found


def _first(text: str, *keys: str) -> str | None:
    for key in keys:
        match = re.search(rf"^{re.escape(key)}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return None


def _physical_cores(text: str) -> int | None:
    """Distinct (physical id, core id) pairs; None where /proc/cpuinfo doesn't say (ARM)."""
    pairs = set(re.findall(r"physical id\s*:\s*(\d+)\s*\n(?:.*\n)*?core id\s*:\s*(\d+)", text))
    return len(pairs) or None


def parse_cpuinfo(text: str, *, arch: str, logical_cores: int | None = None) -> CpuInfo:
    """/proc/cpuinfo → CpuInfo (x86 `model name`/`flags`, ARM `Features`/`CPU part`)."""
    flags_line = _first(text, "flags", "Features") or ""
    flags = set(flags_line.split())
    model = _first(text, "model name", "Model", "Hardware", "CPU part") or "unknown CPU"
    processors = len(re.findall(r"^processor\s*:", text, re.MULTILINE))
    return CpuInfo(
        model=model,
        arch=arch,
        logical_cores=logical_cores or processors or 1,
        physical_cores=_physical_cores(text),
        flags=[f for f in INTERESTING_FLAGS if f in flags],
    )


def local_cpu(proc: Path = Path("/proc")) -> tuple[CpuInfo, int]:
    """This machine's CPU and total RAM in bytes."""
    cpuinfo = _read(proc / "cpuinfo")
    meminfo = parse_meminfo(_read(proc / "meminfo"))
    cpu = parse_cpuinfo(cpuinfo, arch=platform.machine(), logical_cores=os.cpu_count())
    return cpu, meminfo.get("MemTotal", 0)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
