"""`corral hw`: what this machine has, as recipes and the planner see it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from corral.cli.common import config_from, home_of, print_json
from corral.hardware.detect import detect_local
from corral.hardware.info import HardwareInfo
from corral.hosts.check import detect_remote
from corral.hosts.ssh import client_for


def register(app: typer.Typer) -> None:
    app.command("hw")(hw)


def hw(
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    host: str | None = typer.Option(
        None, "--host", help="a host from corral.yaml: detect there, over SSH"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="corral.yaml (for --host)"),
) -> None:
    """Detect GPUs (NVML), CPU and memory; print the hardware kind recipes match on.

    Example: `corral hw --json | jq .kind` prints "gb10" on a DGX Spark, "cpu" without a GPU.
    On unified-memory GPUs (GB10) NVML cannot report memory; corral shows system memory.

    With `--host pegasus` the same is read on that host over SSH (`nvidia-smi -q -x` and
    /proc there, parsed here; nothing of corral is needed on the host).
    """
    info = detect_local() if host is None else _detect_on(host, config)
    if json_out:
        print_json(info.model_dump(mode="json"))
        return
    Console().print(hardware_table(info))
    for note in info.notes:
        Console().print(f"[yellow]note:[/] {note}", highlight=False)


def _detect_on(host: str, config: Path | None) -> HardwareInfo:
    cfg = config_from(config)
    return detect_remote(client_for(cfg, host, home_of(cfg)))


def hardware_table(info: HardwareInfo) -> Table:
    table = Table(title=f"hardware kind: {info.kind}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for gpu in info.gpus:
        mem = f"{gpu.memory_bytes / 2**30:.1f} GiB" if gpu.memory_bytes else "unknown"
        mem += f" ({gpu.memory_source}{', unified' if gpu.unified_memory else ''})"
        sm = f"SM {gpu.compute_capability}" if gpu.compute_capability else "SM ?"
        table.add_row(f"GPU {gpu.index}", f"{gpu.name}, {sm}, {mem}")
    if info.gpus:
        table.add_row("driver / CUDA", f"{info.driver_version or '?'} / {info.cuda_version or '?'}")
    else:
        table.add_row("GPU", "none found (no NVIDIA driver)")
    cpu = info.cpu
    cores = f"{cpu.logical_cores} logical" + (
        f", {cpu.physical_cores} physical" if cpu.physical_cores else ""
    )
    table.add_row("CPU", f"{cpu.model} ({cpu.arch}), {cores}")
    table.add_row("CPU flags", " ".join(cpu.flags) or "none of interest")
    table.add_row("RAM", f"{info.ram_bytes / 2**30:.1f} GiB")
    return table
