"""`corral models check-mount ROOT`: how a root is mounted, and how fast it reads.

The mount comes from the kernel's table (`/proc/mounts`): the longest mount point that
contains the root. Its options are compared with `mount_advice.yaml` (the seed's tuned NFS
line). The read rate is measured on the largest file in the root, twice:

  * cold: with O_DIRECT where the filesystem allows it (bypasses the page cache; tmpfs
    and some FUSE mounts refuse it), else after `posix_fadvise(DONTNEED)`, which drops the
    file's clean cached pages (on NFS too) but can't evict pages another process pins;
  * cached: the same bytes read again through the page cache.

Limits: the cold figure is the client's view; a server-side cache (NAS RAM) can still
make it optimistic. Reads stop at `max_bytes`.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from corral.errors import StoreError

CHUNK = 4 * 1024 * 1024  # a multiple of every block size O_DIRECT may require


@dataclass(frozen=True)
class MountInfo:
    device: str
    mountpoint: Path
    fstype: str
    options: dict[str, str]  # flag options map to ""


@dataclass(frozen=True)
class ReadRate:
    file: Path
    bytes_read: int
    seconds: float
    method: str

    @property
    def mb_per_s(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds > 0 else 0.0


@dataclass
class MountReport:
    mount: MountInfo
    warnings: list[str] = field(default_factory=list)
    cold: ReadRate | None = None
    cached: ReadRate | None = None


def _unescape(field_text: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal (\040 ...).
    return field_text.encode().decode("unicode_escape")


def parse_mounts(text: str) -> list[MountInfo]:
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        options = dict((o.split("=", 1) + [""])[:2] for o in parts[3].split(","))  # noqa: RUF005
        mounts.append(MountInfo(parts[0], Path(_unescape(parts[1])), parts[2], options))
    return mounts


def mount_for(path: Path, mounts_text: str) -> MountInfo:
    """The mount that holds `path`: the longest mount point containing it."""
    real = path.resolve()
    best: MountInfo | None = None
    for mount in parse_mounts(mounts_text):
        holds = real == mount.mountpoint or mount.mountpoint in real.parents
        # >=: a later line for the same mount point is mounted over the earlier one
        if holds and (best is None or len(mount.mountpoint.parts) >= len(best.mountpoint.parts)):
            best = mount
    if best is None:
        raise StoreError(f"no mount in the mount table holds {real}")
    return best


def load_advice() -> dict[str, list[dict[str, Any]]]:
    text = resources.files("corral.store").joinpath("mount_advice.yaml").read_text("utf-8")
    data: dict[str, list[dict[str, Any]]] = yaml.safe_load(text)
    return data


def advise(mount: MountInfo, advice: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One warning per recommended option the mount lacks or sets too low."""
    warnings = []
    for rule in advice.get(mount.fstype, []):
        option = rule["option"]
        have = mount.options.get(option)
        minimum = rule.get("at_least")
        if have is None:
            warnings.append(f"{option} is not set (recommended: {_wanted(rule)}): {rule['why']}")
        elif minimum is not None and int(have) < int(minimum):
            warnings.append(f"{option}={have} is below {minimum}: {rule['why']}")
    return warnings


def _wanted(rule: dict[str, Any]) -> str:
    return f"{rule['option']}={rule['at_least']}" if "at_least" in rule else str(rule["option"])


def largest_file(root: Path) -> Path | None:
    """The biggest regular file under `root` (hidden work folders skipped)."""
    best: tuple[int, Path] | None = None
    for path in _regular_files(root):
        size = path.stat().st_size
        if best is None or size > best[0]:
            best = (size, path)
    return best[1] if best else None


def _regular_files(root: Path) -> Iterator[Path]:
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink() and path.is_file():
                yield path


def read_cold(path: Path, max_bytes: int) -> ReadRate:
    """Read bypassing the page cache: O_DIRECT, else after dropping the cached pages."""
    try:
        return _timed_read(path, max_bytes, os.O_DIRECT, "O_DIRECT")
    except OSError:
        pass  # EINVAL: this filesystem does not do O_DIRECT
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return _timed_read(path, max_bytes, 0, "fadvise(DONTNEED)")


def read_cached(path: Path, max_bytes: int) -> ReadRate:
    """Read once to fill the page cache, then time a second read."""
    _timed_read(path, max_bytes, 0, "warm-up")
    return _timed_read(path, max_bytes, 0, "page cache")


def _timed_read(path: Path, max_bytes: int, flags: int, method: str) -> ReadRate:
    buffer = mmap.mmap(-1, CHUNK)  # page-aligned, as O_DIRECT requires
    fd = os.open(path, os.O_RDONLY | flags)
    done = 0
    started = time.perf_counter()
    try:
        while done < max_bytes:
            got = os.readv(fd, [buffer])
            if got <= 0:
                break
            done += got
    finally:
        os.close(fd)
        buffer.close()
    return ReadRate(path, done, time.perf_counter() - started, method)


def check_mount(
    root: Path, *, mounts_text: str, max_bytes: int, measure: bool = True
) -> MountReport:
    """The mount holding `root`, option warnings, and (if `measure`) cold/cached read rates."""
    if not root.is_dir():
        raise StoreError(f"{root} is not a folder", hint="give the root folder to check")
    report = MountReport(mount=mount_for(root, mounts_text))
    report.warnings = advise(report.mount, load_advice())
    if measure:
        biggest = largest_file(root)
        if biggest is None:
            report.warnings.append(f"no file under {root} to measure the read rate on")
        else:
            report.cold = read_cold(biggest, max_bytes)
            report.cached = read_cached(biggest, max_bytes)
    return report
