"""Record this machine's NVML answers as JSON in the shape tests replay (RecordedNvml):

    python scripts/capture_nvml.py > tests/fixtures/hardware/NAME-nvml.json

Reads through corral's own NVML source, so the capture is what detection saw.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from corral.hardware.nvml import open_nvml


def gpu(nvml: Any, index: int) -> dict[str, Any]:
    memory = nvml.memory_total(index)
    return {
        "index": index,
        "name": nvml.name(index),
        "uuid": nvml.uuid(index),
        "cc": list(nvml.compute_capability(index) or []) or None,
        "mem": {"total": memory} if memory is not None else "NOT_SUPPORTED",
    }


def main() -> int:
    with open_nvml() as nvml:
        if nvml is None:
            print("NVML sees no NVIDIA driver here", file=sys.stderr)
            return 1
        data = {
            "driver": nvml.driver_version(),
            "cuda_driver": nvml.cuda_driver_version(),
            "gpus": [gpu(nvml, i) for i in range(nvml.device_count())],
        }
    print(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
