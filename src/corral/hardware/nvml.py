"""GPUs through NVML, behind a small protocol so recorded answers can stand in for a driver.

`open_nvml()` returns None on a machine without the NVIDIA driver (no libnvidia-ml): that is
the normal CPU case, not an error. Memory: on GB10 (and other unified-memory parts)
`nvmlDeviceGetMemoryInfo` and its `_v2` both return NVML_ERROR_NOT_SUPPORTED, so
`memory_total` returns None and detection falls back to system memory (see the captures
in tests/fixtures/shared/fixtures/hardware/gb10 and ollama/ollama#12619, which does the same).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from corral.errors import HardwareError


class NvmlSource(Protocol):
    """The NVML answers detection needs. None means 'NVML cannot say' (NOT_SUPPORTED)."""

    def driver_version(self) -> str | None: ...

    def cuda_driver_version(self) -> int | None: ...

    def device_count(self) -> int: ...

    def name(self, index: int) -> str: ...

    def uuid(self, index: int) -> str | None: ...

    def compute_capability(self, index: int) -> tuple[int, int] | None: ...

    def memory_total(self, index: int) -> int | None: ...


def cuda_version_text(value: int | None) -> str | None:
    """NVML's 13000 → '13.0' (major*1000 + minor*10)."""
    if not value:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


class RecordedNvml:
    """NVML answers recorded as JSON (the shape of tests/fixtures/.../h100/nvml.json).

    A GPU whose `mem` is "NOT_SUPPORTED" (or missing) answers memory_total with None, as
    the real library does on GB10.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.gpus: list[dict[str, Any]] = list(data.get("gpus", []))

    @classmethod
    def from_file(cls, path: Path) -> RecordedNvml:
        try:
            return cls(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise HardwareError(f"cannot read recorded NVML answers from {path}: {exc}") from exc

    def driver_version(self) -> str | None:
        return self.data.get("driver")

    def cuda_driver_version(self) -> int | None:
        value = self.data.get("cuda_driver")
        return int(value) if value else None

    def device_count(self) -> int:
        return len(self.gpus)

    def name(self, index: int) -> str:
        return str(self.gpus[index]["name"])

    def uuid(self, index: int) -> str | None:
        return self.gpus[index].get("uuid")

    def compute_capability(self, index: int) -> tuple[int, int] | None:
        cc = self.gpus[index].get("cc")
        return (int(cc[0]), int(cc[1])) if cc else None

    def memory_total(self, index: int) -> int | None:
        mem = self.gpus[index].get("mem")
        return int(mem["total"]) if isinstance(mem, dict) else None


class PynvmlSource:
    """The live NVML library through nvidia-ml-py (`import pynvml`)."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self._handles: dict[int, Any] = {}

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self.nvml.nvmlDeviceGetHandleByIndex(index)
        return self._handles[index]

    def _ask(self, call: str, *args: Any) -> Any:
        """Call NVML; NOT_SUPPORTED (and other per-query errors) become None."""
        try:
            return getattr(self.nvml, call)(*args)
        except self.nvml.NVMLError:
            return None

    def driver_version(self) -> str | None:
        value = self._ask("nvmlSystemGetDriverVersion")
        return value.decode() if isinstance(value, bytes) else value

    def cuda_driver_version(self) -> int | None:
        value = self._ask("nvmlSystemGetCudaDriverVersion")
        return int(value) if value else None

    def device_count(self) -> int:
        return int(self.nvml.nvmlDeviceGetCount())

    def name(self, index: int) -> str:
        value = self.nvml.nvmlDeviceGetName(self._handle(index))
        return value.decode() if isinstance(value, bytes) else str(value)

    def uuid(self, index: int) -> str | None:
        value = self._ask("nvmlDeviceGetUUID", self._handle(index))
        return value.decode() if isinstance(value, bytes) else value

    def compute_capability(self, index: int) -> tuple[int, int] | None:
        value = self._ask("nvmlDeviceGetCudaComputeCapability", self._handle(index))
        return (int(value[0]), int(value[1])) if value else None

    def memory_total(self, index: int) -> int | None:
        info = self._ask("nvmlDeviceGetMemoryInfo", self._handle(index))
        return int(info.total) if info is not None and info.total else None


@contextmanager
def open_nvml() -> Iterator[PynvmlSource | None]:
    """NVML for the duration of the block, or None where there is no NVIDIA driver."""
    try:
        import pynvml
    except ImportError:
        yield None
        return
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        # LibraryNotFound / DriverNotLoaded / NoPermission: no usable GPU from here.
        yield None
        return
    try:
        yield PynvmlSource(pynvml)
    finally:
        pynvml.nvmlShutdown()
