"""Parsers for nvidia-smi output: `--query-gpu ... --format=csv`, `-q` text and `-q -x` XML.

corral asks NVML first; these read what people paste and what machines without Python
bindings print, and they keep detection honest against real captures. "[N/A]", "N/A" and
"Not Supported" (GB10's memory fields) become None, never zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree import ElementTree

from corral.errors import HardwareError
from corral.hardware.info import GpuInfo

MISSING = {"[n/a]", "n/a", "not supported", "[not supported]", "", "[unknown error]"}
UNIT_FACTORS = {"mib": 2**20, "gib": 2**30, "kib": 2**10, "b": 1}


@dataclass
class SmiReport:
    gpus: list[GpuInfo] = field(default_factory=list)
    driver_version: str | None = None
    cuda_version: str | None = None


def _value(raw: str | None) -> str | None:
    if raw is None:
        return None
    text = raw.strip()
    return None if text.lower() in MISSING else text


def parse_bytes(raw: str | None, default_unit: str = "mib") -> int | None:
    """'81559 MiB' / '81559' (a MiB column) / '[N/A]' → bytes or None."""
    text = _value(raw)
    if text is None:
        return None
    match = re.fullmatch(r"([\d.]+)\s*([KMG]iB|B)?", text, re.IGNORECASE)
    if not match:
        raise HardwareError(f"cannot read a memory size from nvidia-smi value {raw!r}")
    unit = (match.group(2) or default_unit).lower()
    return int(float(match.group(1)) * UNIT_FACTORS[unit])


def _field_name(header: str) -> str:
    """'memory.total [MiB]' → 'memory.total'."""
    return re.sub(r"\s*\[.*\]$", "", header.strip())


def parse_query_csv(text: str, fields: list[str] | None = None) -> list[dict[str, str | None]]:
    """Rows of `nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]`.

    With a header line, field names come from it; for `noheader` output pass the
    `--query-gpu` field list as `fields`.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if fields is None:
        if not lines:
            raise HardwareError("empty nvidia-smi CSV output (expected a header line)")
        fields = [_field_name(h) for h in lines[0].split(",")]
        lines = lines[1:]
    rows = []
    for line in lines:
        values = [v.strip() for v in line.split(",")]
        if len(values) != len(fields):
            raise HardwareError(
                f"nvidia-smi CSV row has {len(values)} values for {len(fields)} fields: {line!r}",
                hint="pass the --query-gpu field list when the output has no header",
            )
        rows.append({f: _value(v) for f, v in zip(fields, values, strict=True)})
    return rows


def report_from_query(rows: list[dict[str, str | None]]) -> SmiReport:
    report = SmiReport()
    for position, row in enumerate(rows):
        report.driver_version = report.driver_version or row.get("driver_version")
        memory = parse_bytes(row.get("memory.total"))
        report.gpus.append(
            GpuInfo(
                index=int(row.get("index") or position),
                name=row.get("name") or "unknown GPU",
                uuid=row.get("uuid"),
                compute_capability=row.get("compute_cap"),
                memory_bytes=memory,
                memory_source="nvidia-smi" if memory is not None else None,
            )
        )
    return report


def parse_q_text(text: str) -> SmiReport:
    """`nvidia-smi -q`: 'Key   : value' lines, sections by indentation, one block per GPU."""
    report = SmiReport()
    section: list[tuple[int, str]] = []
    gpu: dict[str, str | None] | None = None
    for raw in text.splitlines():
        if not raw.strip() or raw.strip() == "..":
            continue
        indent = len(raw) - len(raw.lstrip())
        key, sep, val = (part.strip() for part in raw.partition(" : "))
        section = [(i, s) for i, s in section if i < indent]
        if indent == 0 and key.startswith("GPU ") and not sep:
            gpu, section = {}, []
            report.gpus.append(GpuInfo(index=len(report.gpus), name="unknown GPU"))
            continue
        if not sep:
            section.append((indent, key))
            continue
        path = "/".join([s for _, s in section] + [key])
        if gpu is None:
            report.driver_version = report.driver_version or _top(path, val, "Driver Version")
            report.cuda_version = report.cuda_version or _top(path, val, "CUDA Version")
        else:
            gpu[path] = _value(val)
            report.gpus[-1] = _gpu_from_q(len(report.gpus) - 1, gpu)
    return report


def _top(path: str, value: str, key: str) -> str | None:
    return _value(value) if path == key else None


def _gpu_from_q(index: int, fields: dict[str, str | None]) -> GpuInfo:
    memory = parse_bytes(fields.get("FB Memory Usage/Total"))
    return GpuInfo(
        index=index,
        name=fields.get("Product Name") or "unknown GPU",
        uuid=fields.get("GPU UUID"),
        memory_bytes=memory,
        memory_source="nvidia-smi" if memory is not None else None,
    )


def parse_q_xml(text: str) -> SmiReport:
    """`nvidia-smi -q -x` XML (nvsmi_device_v12/v13 DTD)."""
    try:
        # nvidia-smi's own output on this machine or a pasted capture, not network input.
        root = ElementTree.fromstring(text)  # noqa: S314
    except ElementTree.ParseError as exc:
        raise HardwareError(f"nvidia-smi XML output does not parse: {exc}") from exc
    report = SmiReport(
        driver_version=_value(root.findtext("driver_version")),
        cuda_version=_value(root.findtext("cuda_version")),
    )
    for index, node in enumerate(root.findall("gpu")):
        memory = parse_bytes(node.findtext("fb_memory_usage/total"))
        report.gpus.append(
            GpuInfo(
                index=index,
                name=node.findtext("product_name") or "unknown GPU",
                uuid=_value(node.findtext("uuid")),
                memory_bytes=memory,
                memory_source="nvidia-smi" if memory is not None else None,
            )
        )
    return report
