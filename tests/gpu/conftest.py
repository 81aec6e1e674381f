"""GPU tests run wherever NVML sees a GPU, and are skipped with the reason elsewhere (CI)."""

from __future__ import annotations

import pytest

from corral.hardware.nvml import open_nvml


def nvml_gpu_count() -> tuple[int, str]:
    """(GPUs NVML sees, why none when it is 0)."""
    with open_nvml() as nvml:
        if nvml is None:
            return 0, "NVML sees no NVIDIA driver (no GPU on this machine)"
        count = nvml.device_count()
    return count, "" if count else "NVML reports 0 GPUs"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    count, reason = nvml_gpu_count()
    if count:
        return
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=f"needs a GPU: {reason}"))
