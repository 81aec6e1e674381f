"""Detection on the real H200 captures (tests/fixtures/hardware/h200/, see source.txt there):
NVML, `nvidia-smi -q -x`, `-q` text and the query CSV all agree, and the h200 profile's
figures are the ones they show."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.hardware import nvidia_smi
from corral.hardware.detect import detect, detect_from_smi
from corral.hardware.info import CpuInfo
from corral.hardware.nvml import RecordedNvml
from corral.hardware.profiles import load_profile

MIB, GIB = 2**20, 2**30
CPU = CpuInfo(model="Intel(R) Xeon(R) Processor", arch="x86_64", logical_cores=16)
H200_MIB = 143_771


@pytest.fixture
def h200(repo_fixtures: Path) -> Path:
    return repo_fixtures / "hardware" / "h200"


def test_h200_from_recorded_nvml(h200: Path) -> None:
    info = detect(RecordedNvml.from_file(h200 / "h200-nvml.json"), CPU, 125 * GIB)
    gpu = info.gpus[0]
    assert info.kind == "h200"
    assert (gpu.name, gpu.compute_capability, gpu.memory_source) == ("NVIDIA H200", "9.0", "nvml")
    assert gpu.memory_bytes == 150_754_820_096 == H200_MIB * MIB
    assert (info.driver_version, info.cuda_version) == ("580.159.04", "13.0")
    assert info.summary() == "h200: 1× NVIDIA H200 (SM 9.0, 140.4 GiB)"


def test_h200_nvidia_smi_xml_text_and_csv_agree_with_nvml(h200: Path) -> None:
    xml = nvidia_smi.parse_q_xml((h200 / "h200-nvidia-smi-q.xml").read_text())
    text = nvidia_smi.parse_q_text((h200 / "h200-nvidia-smi-q.txt").read_text())
    rows = nvidia_smi.parse_query_csv((h200 / "h200-nvidia-smi-query.csv").read_text())
    csv = nvidia_smi.report_from_query(rows)
    for report in (xml, text, csv):
        assert report.gpus[0].name == "NVIDIA H200"
        assert report.gpus[0].memory_bytes == H200_MIB * MIB
        assert report.driver_version == "580.159.04"
    assert xml.cuda_version == text.cuda_version == "13.0"
    assert csv.gpus[0].compute_capability == "9.0"
    assert rows[0]["memory.used"] == "0 MiB"
    assert detect_from_smi(xml, CPU, 125 * GIB).kind == "h200"


def test_h200_profile_matches_the_capture_and_the_datasheet(h200: Path) -> None:
    profile = load_profile("h200")
    nvml = RecordedNvml.from_file(h200 / "h200-nvml.json").memory_total(0)
    assert nvml is not None
    assert profile.engine_visible_memory_gib == round(nvml / GIB, 1) == 140.4
    assert profile.memory_gib == 141  # datasheet: 141 GB HBM3e
    assert profile.bandwidth_gb_s == 4800  # datasheet: 4.8 TB/s
    assert profile.compute_capability == "9.0"
