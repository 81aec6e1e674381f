"""Store roots: the folders (NFS shares, local disks) that hold models.

The roots of a fleet are the ones named in corral.yaml (`store.roots`), in the order
listed, followed by the default root `<data home>/models` where `corral models pull` puts
the default model. Resolution takes the first root that has a model, so list a fast local
root before the NFS share. On the command line, `--root DIR` (repeatable) replaces these:
a configured root's name or any folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from corral.config import CorralConfig, StoreRoot
from corral.errors import StoreError
from corral.paths import models_dir

DEFAULT_ROOT_NAME = "default"


def default_root(home: Path) -> StoreRoot:
    return StoreRoot(name=DEFAULT_ROOT_NAME, path=models_dir(home))


def store_roots(config: CorralConfig, home: Path) -> list[StoreRoot]:
    """The configured roots in order, then the default root (unless already listed)."""
    roots = [r.model_copy(update={"path": r.path.expanduser()}) for r in config.store.roots]
    default = default_root(home)
    listed = {_same_key(r.path) for r in roots}
    names = {r.name for r in roots}
    if _same_key(default.path) not in listed:
        name = DEFAULT_ROOT_NAME if DEFAULT_ROOT_NAME not in names else "corral-default"
        roots.append(default.model_copy(update={"name": name}))
    return roots


def roots_from_flags(flags: Sequence[str], config_roots: Sequence[StoreRoot]) -> list[StoreRoot]:
    """`--root` values: a configured root's name, or a folder (named by its path)."""
    by_name = {r.name: r for r in config_roots}
    chosen: list[StoreRoot] = []
    for flag in flags:
        if flag in by_name:
            chosen.append(by_name[flag])
        else:
            path = Path(flag).expanduser()
            chosen.append(StoreRoot(name=str(path), path=path))
    return chosen


def as_root(root: StoreRoot | Path | str) -> StoreRoot:
    """Accept a StoreRoot, or a bare folder (then named by its path)."""
    if isinstance(root, StoreRoot):
        return root
    path = Path(root).expanduser()
    return StoreRoot(name=str(path), path=path)


def find_root(name_or_path: str, roots: Sequence[StoreRoot]) -> StoreRoot:
    """A root by its name among `roots`, else the folder `name_or_path` itself."""
    for root in roots:
        if root.name == name_or_path:
            return root
    return as_root(name_or_path)


def check_readable(root: StoreRoot) -> None:
    """StoreError unless `root` is a folder this process can list."""
    path = root.path
    if not path.exists():
        raise StoreError(
            f"store root {root.name!r} does not exist: {path}",
            hint="create the folder, mount the share, or fix store.roots in corral.yaml",
        )
    if not path.is_dir():
        raise StoreError(f"store root {root.name!r} is not a folder: {path}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise StoreError(
            f"store root {root.name!r} is not readable by this user: {path}",
            hint="check the folder's permissions (and the NFS export's squash settings)",
        )


def check_writable(root: StoreRoot) -> None:
    """StoreError unless models can be written into `root`."""
    if root.read_only:
        raise StoreError(
            f"store root {root.name!r} is marked read_only in corral.yaml: {root.path}",
            hint="choose another root, or set read_only: false for it",
        )
    # Never create a root: if a share is not mounted, its empty mount point must not
    # silently fill the local disk.
    check_readable(root)
    probe = root.path / f".corral-write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StoreError(
            f"cannot write into store root {root.name!r} ({root.path}): {exc.strerror}",
            hint="the folder or its filesystem refuses writes (read-only mount or permissions)",
        ) from None


def _same_key(path: Path) -> str:
    return os.path.normpath(os.path.abspath(path.expanduser()))
