"""Space and removal: `corral models du` and `corral models rm`.

Removal hides first, then deletes: a snapshot is renamed to a hidden name (so resolution
and listing stop seeing it at once), the refs pointing at it are dropped, and only the
blobs no other snapshot of the repo references are deleted. A repo left with no snapshot
is removed whole. A plain folder is renamed to a hidden sibling, then deleted.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from corral.config import StoreRoot
from corral.store.catalog import ModelEntry, scan_roots
from corral.store.roots import check_writable
from corral.store.stage import STAGE_DIR

WORK_DIRS = (STAGE_DIR, ".corral-work")


@dataclass(frozen=True)
class RootUsage:
    root: StoreRoot
    models: int
    model_bytes: int
    leftover_bytes: int  # unfinished stages and pulls (hidden work folders)
    disk_total: int
    disk_free: int


def disk_usage(roots: Sequence[StoreRoot]) -> list[RootUsage]:
    """Per root: models and their bytes, leftovers from interrupted work, the disk's space."""
    usages = []
    for root in roots:
        if not root.path.is_dir():
            continue
        entries = scan_roots([root]).entries
        disk = shutil.disk_usage(root.path)
        leftovers = sum(tree_bytes(root.path / d) for d in WORK_DIRS)
        usages.append(
            RootUsage(
                root=root,
                models=len(entries),
                model_bytes=sum(e.size for e in entries),
                leftover_bytes=leftovers,
                disk_total=disk.total,
                disk_free=disk.free,
            )
        )
    return usages


def tree_bytes(folder: Path) -> int:
    """Bytes of the regular files under `folder` (symlinks not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def remove_model(entry: ModelEntry) -> int:
    """Delete one snapshot or plain folder; returns the bytes freed."""
    check_writable(entry.root)
    if entry.layout == "plain":
        hidden = entry.path.with_name(f".{entry.path.name}.deleting-{os.getpid()}")
        os.replace(entry.path, hidden)
        freed = tree_bytes(hidden)
        shutil.rmtree(hidden)
        return freed
    return _remove_snapshot(entry.path)


def _remove_snapshot(snapshot: Path) -> int:
    repo = snapshot.parent.parent
    revision = snapshot.name
    hidden = snapshot.with_name(f".{revision}.deleting-{os.getpid()}")
    os.replace(snapshot, hidden)
    _drop_refs(repo / "refs", revision)
    kept = _referenced_blobs(repo)
    freed = 0
    for link in hidden.rglob("*"):
        blob = link.resolve()
        if link.is_symlink() and blob.is_file() and blob not in kept:
            freed += blob.stat().st_size
            blob.unlink()
    shutil.rmtree(hidden)
    if not any(p for p in (repo / "snapshots").iterdir() if not p.name.startswith(".")):
        freed += tree_bytes(repo)
        shutil.rmtree(repo)
    return freed


def _drop_refs(refs: Path, revision: str) -> None:
    if not refs.is_dir():
        return
    for ref in refs.rglob("*"):
        if ref.is_file() and ref.read_text().strip() == revision:
            ref.unlink()


def _referenced_blobs(repo: Path) -> set[Path]:
    """Blobs the repo's remaining (visible) snapshots point at."""
    kept: set[Path] = set()
    for snap in (repo / "snapshots").iterdir():
        if snap.name.startswith("."):
            continue
        kept.update(p.resolve() for p in snap.rglob("*") if p.is_symlink())
    return kept
