"""Hardware detection on this machine's CPU and on recorded GB10 / H100 outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from corral.errors import HardwareError
from corral.hardware import nvidia_smi
from corral.hardware.cpu import local_cpu, parse_cpuinfo, parse_meminfo
from corral.hardware.detect import detect, detect_from_smi, detect_local
from corral.hardware.info import CpuInfo
from corral.hardware.nvml import PynvmlSource, RecordedNvml, cuda_version_text

REPO = Path(__file__).resolve().parents[2]
MIB = 2**20
CPU = CpuInfo(model="test CPU", arch="aarch64", logical_cores=20)


@pytest.fixture
def gb10(shared_fixtures: Path) -> Path:
    return shared_fixtures / "hardware" / "gb10"


@pytest.fixture
def h100(shared_fixtures: Path) -> Path:
    return shared_fixtures / "hardware" / "h100"


def gb10_system_memory(gb10: Path) -> int:
    """MemTotal recorded on the GB10 next to NVML's NOT_SUPPORTED answer."""
    return parse_meminfo((gb10 / "nvml-getmemoryinfo-ctypes.txt").read_text())["MemTotal"]


def test_this_machine_is_a_cpu_box_with_its_memory_and_cores() -> None:
    info = detect_local()
    cpu, ram = local_cpu()
    assert info.kind == "cpu"
    assert info.gpus == []
    assert info.ram_bytes == ram > 2**30
    assert info.cpu.logical_cores == cpu.logical_cores >= 1
    assert info.cpu.model != "unknown CPU"


def test_h100_from_recorded_nvml(h100: Path) -> None:
    info = detect(RecordedNvml.from_file(h100 / "nvml.json"), CPU, 100 * 2**30)
    gpu = info.gpus[0]
    assert info.kind == "h100"
    assert (gpu.name, gpu.compute_capability, gpu.memory_source) == (
        "NVIDIA H100 80GB HBM3",
        "9.0",
        "nvml",
    )
    assert gpu.memory_bytes == 85_520_809_984
    assert not gpu.unified_memory
    assert (info.driver_version, info.cuda_version) == ("580.159.04", "13.0")


def test_h100_nvml_memory_agrees_with_nvidia_smi(h100: Path) -> None:
    rows = nvidia_smi.parse_query_csv((h100 / "nvidia-smi-query.csv").read_text())
    smi = nvidia_smi.report_from_query(rows)
    xml = nvidia_smi.parse_q_xml((h100 / "nvidia-smi-q.xml").read_text())
    nvml = RecordedNvml.from_file(h100 / "nvml.json")
    assert smi.gpus[0].memory_bytes == xml.gpus[0].memory_bytes == 81559 * MIB
    assert nvml.memory_total(0) == 81559 * MIB
    assert smi.gpus[0].compute_capability == "9.0"
    assert xml.driver_version == smi.driver_version == "580.159.04"


def test_gb10_nvml_memory_not_supported_falls_back_to_system_memory(
    gb10: Path, repo_fixtures: Path
) -> None:
    ram = gb10_system_memory(gb10)
    info = detect(RecordedNvml.from_file(repo_fixtures / "hardware" / "gb10-nvml.json"), CPU, ram)
    gpu = info.gpus[0]
    assert info.kind == "gb10"
    assert gpu.compute_capability == "12.1"
    assert gpu.memory_bytes == ram == 127_600_748 * 1024
    assert gpu.memory_source == "system"
    assert gpu.unified_memory
    assert "NOT_SUPPORTED" in info.notes[0]
    assert "SM 12.1" in info.summary()
    assert "unified" in info.summary()


def test_gb10_nvidia_smi_q_text(gb10: Path) -> None:
    report = nvidia_smi.parse_q_text((gb10 / "nvidia-smi-q-excerpt.txt").read_text())
    assert (report.driver_version, report.cuda_version) == ("580.95.05", "13.0")
    assert [g.name for g in report.gpus] == ["NVIDIA GB10"]
    assert report.gpus[0].memory_bytes is None  # BAR1/FB memory read N/A
    info = detect_from_smi(report, CPU, gb10_system_memory(gb10))
    assert info.kind == "gb10"
    assert info.gpus[0].unified_memory


def test_gb10_query_csv_without_header_needs_the_field_list(gb10: Path) -> None:
    text = (gb10 / "nvidia-smi-query-noheader.csv").read_text()
    fields = ["name", "compute_cap", "driver_version", "memory.total"]
    report = nvidia_smi.report_from_query(nvidia_smi.parse_query_csv(text, fields))
    gpu = report.gpus[0]
    assert (gpu.name, gpu.compute_capability, gpu.memory_bytes) == ("NVIDIA GB10", "12.1", None)
    assert report.driver_version == "580.159.03"
    with pytest.raises(HardwareError, match="4 values for 3 fields"):
        nvidia_smi.parse_query_csv(text, fields[:3])


def test_gb10_query_csv_with_units_reads_na_as_missing(gb10: Path) -> None:
    rows = nvidia_smi.parse_query_csv((gb10 / "nvidia-smi-query-memory-power.csv").read_text())
    assert rows == [
        {
            "memory.total": None,
            "memory.used": None,
            "memory.free": None,
            "utilization.gpu": "0 %",
            "power.draw": "11.17 W",
            "temperature.gpu": "35",
        }
    ]
    header = nvidia_smi.parse_query_csv((gb10 / "nvidia-smi-query-csv-header.csv").read_text())
    assert header[0]["name"] == "NVIDIA GB10"
    assert header[0]["memory.free"] is None


def test_bad_memory_value_is_a_hardware_error() -> None:
    with pytest.raises(HardwareError, match="memory size"):
        nvidia_smi.parse_bytes("lots")


def test_cpuinfo_x86_and_arm() -> None:
    x86 = (
        "processor\t: 0\nmodel name\t: Intel Xeon\nphysical id\t: 0\ncore id\t: 0\n"
        "flags\t\t: fpu avx2 avx512f amx_tile amx_bf16\n\n"
        "processor\t: 1\nmodel name\t: Intel Xeon\nphysical id\t: 0\ncore id\t: 0\n"
        "flags\t\t: fpu avx2 avx512f amx_tile amx_bf16\n"
    )
    cpu = parse_cpuinfo(x86, arch="x86_64")
    assert (cpu.model, cpu.logical_cores, cpu.physical_cores) == ("Intel Xeon", 2, 1)
    assert cpu.flags == ["avx2", "avx512f", "amx_tile", "amx_bf16"]
    arm = "processor\t: 0\nFeatures\t: fp asimd sve2\nCPU part\t: 0xd85\n"
    cpu = parse_cpuinfo(arm, arch="aarch64")
    assert cpu.flags == ["asimd", "sve2"]
    assert cpu.model == "0xd85"


class _NotSupported(Exception):
    pass


class _FakePynvml:
    """The slice of pynvml PynvmlSource calls, answering like a GB10."""

    NVMLError = _NotSupported

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle{index}"

    def nvmlDeviceGetName(self, handle: str) -> bytes:
        return b"NVIDIA GB10"

    def nvmlDeviceGetUUID(self, handle: str) -> str:
        return "GPU-x"

    def nvmlDeviceGetCudaComputeCapability(self, handle: str) -> tuple[int, int]:
        return (12, 1)

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> Any:
        raise _NotSupported("Not Supported")

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.95.05"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 13000


def test_live_nvml_wrapper_turns_not_supported_into_none() -> None:
    info = detect(PynvmlSource(_FakePynvml()), CPU, 128 * 2**30)
    assert info.gpus[0].name == "NVIDIA GB10"
    assert info.gpus[0].memory_source == "system"
    assert info.cuda_version == "13.0"
    assert cuda_version_text(12080) == "12.8"


def test_corral_hw_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "corral", "hw", "--json"], capture_output=True, text=True, check=True
    )
    data = json.loads(done.stdout)
    assert data["kind"] == "cpu"
    assert data["ram_bytes"] > 0
