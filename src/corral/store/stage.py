"""Copy a model between roots (say NFS share → local NVMe), resumable and atomic.

A Hugging Face snapshot keeps its layout: blobs are copied once, the snapshot's relative
symlinks are recreated, and the refs that point at the revision come along. Plain folders
are copied file by file. All work happens under `<target>/.corral-stage/<key>/`, a hidden
folder that no listing or resolution ever shows:

    1. plan: which blobs the target lacks; check the target disk has room for them;
    2. copy each blob to `<blob>.part`, hashing as it goes; a `.part` left by a killed run
       is hashed up to its length and continued from there (resume); a blob whose hash
       matches its name is fsynced and renamed to `<blob>`; one that doesn't is an error;
    3. build the snapshot folder (symlinks) in the stage and run the structural checks of
       `corral.store.verify` on it (headers, index, config.json);
    4. publish: a repo the target didn't have is renamed into place in one step; else the
       blobs are moved in first (invisible on their own) and then the snapshot folder is
       renamed into `snapshots/` (the moment it appears), then the refs are written.

A full disk is caught before copying (free space vs bytes still to copy) and again on
write errors (ENOSPC/EDQUOT): the `.part` being written is removed, finished blobs stay in
the stage for the next run, and the message says how much room is missing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.config import StoreRoot
from corral.errors import StoreError
from corral.store import verify
from corral.store.hf_layout import CHUNK
from corral.store.roots import check_writable

STAGE_DIR = ".corral-stage"
SPACE_MARGIN = 64 * 1024 * 1024  # room left for the filesystem's own metadata
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)

Progress = Callable[[int, int], None]
"""on_progress(bytes_done, bytes_total); bytes_done includes bytes already staged earlier."""


@dataclass(frozen=True)
class Blob:
    """One file to copy: where it is read from and its name in the target's blobs/."""

    source: Path
    name: str
    size: int


@dataclass
class StagePlan:
    """What staging `source` into `target` means: blobs, snapshot links, final location."""

    source: Path
    target: StoreRoot
    layout: str  # "hf" or "plain"
    key: str  # <repo folder>/<revision>, or the plain folder's name
    blobs: list[Blob] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # snapshot file → blob name
    refs: dict[str, str] = field(default_factory=dict)  # ref name → revision

    @property
    def total(self) -> int:
        return sum(b.size for b in self.blobs)

    @property
    def stage(self) -> Path:
        return self.target.path / STAGE_DIR / self.key.replace("/", "@")

    @property
    def final(self) -> Path:
        if self.layout == "plain":
            return self.target.path / self.key
        return self.target.path / self.key.replace("/", "/snapshots/", 1)

    @property
    def files_dir(self) -> Path:
        """Where the stage keeps copied blobs (HF) or files (plain)."""
        if self.layout == "plain":
            return self.stage / "files"
        return self.stage / self.key.split("/")[0] / "blobs"


@dataclass
class StageResult:
    path: Path
    bytes_total: int
    bytes_copied: int
    bytes_resumed: int
    bytes_reused: int
    seconds: float
    already_present: bool = False

    @property
    def mb_per_s(self) -> float:
        return self.bytes_copied / 1e6 / self.seconds if self.seconds > 0 else 0.0


def _noop(_done: int, _total: int) -> None:
    return None


def plan_stage(source: Path, target: StoreRoot, name: str | None = None) -> StagePlan:
    """A plan for an HF snapshot folder (`.../models--x--y/snapshots/<rev>`) or a plain one."""
    source = source.absolute()
    repo = source.parent.parent
    if source.parent.name == "snapshots" and repo.name.startswith("models--"):
        return _plan_hf(source, repo, target)
    return _plan_plain(source, target, name or source.name)


def _plan_hf(source: Path, repo: Path, target: StoreRoot) -> StagePlan:
    plan = StagePlan(source, target, "hf", f"{repo.name}/{source.name}")
    seen: set[str] = set()
    for name in verify.list_files(source):
        link = source / name
        blob = link.resolve()
        if not blob.is_file():
            raise StoreError(
                f"{link} points at {blob}, which is missing: the source is incomplete",
                hint=f"run `corral models verify {source}` and repair the source first",
            )
        plan.links[name] = blob.name
        if blob.name not in seen:
            seen.add(blob.name)
            plan.blobs.append(Blob(blob, blob.name, blob.stat().st_size))
    for ref in (repo / "refs").rglob("*") if (repo / "refs").is_dir() else []:
        if ref.is_file() and ref.read_text().strip() == source.name:
            plan.refs[ref.relative_to(repo / "refs").as_posix()] = source.name
    return plan


def _plan_plain(source: Path, target: StoreRoot, name: str) -> StagePlan:
    plan = StagePlan(source, target, "plain", name)
    for rel in verify.list_files(source):
        path = source / rel
        plan.blobs.append(Blob(path, rel, path.stat().st_size))
    return plan


def stage(
    plan: StagePlan,
    *,
    on_progress: Progress = _noop,
    bwlimit: float | None = None,
    jobs: int = 2,
) -> StageResult:
    """Carry out `plan`: copy (resuming), verify, publish. Returns what it did and how fast.

    `jobs` blobs are copied at once. More streams keep more reads in flight on a network
    share; on one local disk 1 and 4 measured the same (~300 MB/s, see docs/models.md).
    """
    if plan.final.exists():
        return StageResult(plan.final, plan.total, 0, 0, 0, 0.0, already_present=True)
    check_writable(plan.target)
    blobs_dir = plan.files_dir
    blobs_dir.mkdir(parents=True, exist_ok=True)
    with _stage_lock(plan):
        reused = _reuse_target_blobs(plan, blobs_dir)
        _check_space(plan, blobs_dir)
        copier = _Copier(plan.total, on_progress, bwlimit)
        copier.done = sum(_staged_bytes(blobs_dir, b) for b in plan.blobs)
        started = time.monotonic()
        copier.copy_all([(b, blobs_dir / b.name) for b in plan.blobs], jobs)
        seconds = time.monotonic() - started
        _assemble_and_check(plan, blobs_dir)
        _publish(plan)
    return StageResult(plan.final, plan.total, copier.copied, copier.resumed, reused, seconds)


@contextmanager
def _stage_lock(plan: StagePlan) -> Iterator[None]:
    """One stager per model and target: a second one fails at once instead of interleaving."""
    with (plan.stage / "lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"another `corral models stage` is already copying into {plan.stage}",
                hint="wait for it to finish, or stop it (it resumes where it left off)",
            ) from None
        yield


def _staged_bytes(blobs_dir: Path, blob: Blob) -> int:
    done = blobs_dir / blob.name
    if done.is_file():
        return blob.size
    part = _part(done)
    return min(part.stat().st_size, blob.size) if part.is_file() else 0


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def _reuse_target_blobs(plan: StagePlan, blobs_dir: Path) -> int:
    """Hard-link blobs the target repo already has (another revision shares them).

    Each is re-hashed first (a local read), so a staged model is verified end to end.
    """
    if plan.layout != "hf":
        return 0
    have = plan.target.path / plan.key.split("/")[0] / "blobs"
    reused = 0
    for blob in plan.blobs:
        existing, staged = have / blob.name, blobs_dir / blob.name
        if not existing.is_file() or staged.exists() or existing.stat().st_size != blob.size:
            continue
        if not _hash_matches(existing):
            raise StoreError(
                f"the target already holds blob {existing}, but its content does not match "
                "its name",
                hint=f"remove {existing} (it is corrupt) and stage again",
            )
        os.link(existing, staged)
        reused += blob.size
    return reused


def _hash_matches(path: Path) -> bool:
    kind = verify.expected_digest(path.name)
    if kind is None:
        return True
    digest = verify.new_hasher(kind, path.stat().st_size)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return bool(digest.hexdigest() == path.name)


def _check_space(plan: StagePlan, blobs_dir: Path) -> None:
    needed = plan.total - sum(_staged_bytes(blobs_dir, b) for b in plan.blobs)
    free = shutil.disk_usage(plan.target.path).free
    if needed + SPACE_MARGIN > free:
        raise StoreError(
            f"not enough room in {plan.target.path}: staging needs {_gib(needed)} more, "
            f"the disk has {_gib(free)} free",
            hint="free space on the target (see `corral models du`) or choose another root",
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


class _Copier:
    """Copies blobs chunk by chunk, hashing, resuming `.part` files, optionally rate-limited."""

    def __init__(self, total: int, on_progress: Progress, bwlimit: float | None) -> None:
        self.total = total
        self.on_progress = on_progress
        self.bwlimit = bwlimit * 1e6 if bwlimit else None
        self.done = 0
        self.copied = 0
        self.resumed = 0
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.cancelled = threading.Event()

    def copy_all(self, work: list[tuple[Blob, Path]], jobs: int) -> None:
        """Copy on `jobs` threads; the first error (or Ctrl-C) stops the others."""
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(self.copy, blob, dest) for blob, dest in work]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                self.cancelled.set()
                raise

    def copy(self, blob: Blob, dest: Path) -> None:
        if self.cancelled.is_set() or dest.is_file():
            return  # after Ctrl-C or another copy's error, queued copies don't start
        part = _part(dest)
        part.parent.mkdir(parents=True, exist_ok=True)
        kind = verify.expected_digest(blob.name)
        digest = verify.new_hasher(kind, blob.size) if kind else None
        offset = self._resume(part, blob, digest)
        try:
            self._copy_from(blob, part, offset, digest)
        except OSError as exc:
            if exc.errno in FULL_DISK:  # it cannot finish here; other errors keep it to resume
                part.unlink(missing_ok=True)
            raise _write_error(exc, blob, dest) from None
        if self.cancelled.is_set():
            return
        if digest is not None and digest.hexdigest() != blob.name:
            part.unlink()
            raise StoreError(
                f"{blob.source} hashes to {digest.hexdigest()}, not its name {blob.name}",
                hint="the source blob is corrupt: run `corral models verify` on the source",
            )
        os.replace(part, dest)

    def _resume(self, part: Path, blob: Blob, digest: Any) -> int:
        """Hash what a killed run already copied; returns the offset to continue from."""
        if not part.is_file():
            return 0
        offset = part.stat().st_size
        if offset > blob.size:
            part.unlink()
            return 0
        if digest is not None:
            with part.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
        with self.lock:
            self.resumed += offset
        return offset

    def _copy_from(self, blob: Blob, part: Path, offset: int, digest: Any) -> None:
        with blob.source.open("rb") as src, part.open("ab") as dst:
            src.seek(offset)
            while not self.cancelled.is_set() and (chunk := src.read(CHUNK)):
                dst.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                self._count(len(chunk))
                self._throttle()
            dst.flush()
            os.fsync(dst.fileno())
        if not self.cancelled.is_set() and part.stat().st_size != blob.size:
            raise StoreError(f"{blob.source} changed size while being copied")

    def _count(self, n: int) -> None:
        with self.lock:
            self.copied += n
            self.done += n
            done = self.done
        self.on_progress(done, self.total)

    def _throttle(self) -> None:
        # --bwlimit: sleep until the bytes copied so far fit the rate (like rsync's).
        if self.bwlimit:
            ahead = self.copied / self.bwlimit - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)


def _write_error(exc: OSError, blob: Blob, dest: Path) -> StoreError:
    if exc.errno in FULL_DISK:
        return StoreError(
            f"the target disk filled up while copying {blob.name} to {dest.parent}",
            hint="free space and run the same command again: finished blobs are kept and "
            "the copy resumes; nothing half-copied is visible in the root",
        )
    return StoreError(f"copying {blob.source} to {dest} failed: {exc.strerror}")


def _assemble_and_check(plan: StagePlan, blobs_dir: Path) -> None:
    """Build the snapshot's links in the stage and run the structural checks on it."""
    folder = blobs_dir
    if plan.layout == "hf":
        folder = blobs_dir.parent / "snapshots" / plan.key.split("/")[1]
        _link_snapshot(plan, folder, blobs_dir)
    report = verify.verify_folder(folder, rehash=False)
    if not report.ok:
        raise StoreError(
            "the staged copy failed verification:\n  " + "\n  ".join(report.failures()),
            hint="the source is probably damaged: run `corral models verify` on it",
        )


def _link_snapshot(plan: StagePlan, folder: Path, repo_blobs: Path) -> None:
    for name, blob in plan.links.items():
        link = folder / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(repo_blobs / blob, link.parent))


def _publish(plan: StagePlan) -> None:
    if plan.layout == "plain":
        plan.final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(plan.stage / "files", plan.final)
    else:
        _publish_hf(plan)
    shutil.rmtree(plan.stage, ignore_errors=True)
    with contextlib.suppress(OSError):  # other stages may still be in progress there
        plan.stage.parent.rmdir()


def _publish_hf(plan: StagePlan) -> None:
    repo_name, revision = plan.key.split("/")
    staged_repo = plan.stage / repo_name
    repo = plan.target.path / repo_name
    for ref, rev in plan.refs.items():
        _write_ref(staged_repo / "refs" / ref, rev)
    if not repo.exists():
        os.replace(staged_repo, repo)  # one rename: the whole repo appears at once
        return
    (repo / "blobs").mkdir(exist_ok=True)
    for blob in (staged_repo / "blobs").iterdir():
        if not (repo / "blobs" / blob.name).exists():
            os.replace(blob, repo / "blobs" / blob.name)
    (repo / "snapshots").mkdir(exist_ok=True)
    os.replace(staged_repo / "snapshots" / revision, repo / "snapshots" / revision)
    for ref, rev in plan.refs.items():
        _write_ref(repo / "refs" / ref, rev)


def _write_ref(path: Path, revision: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(revision)
    os.replace(tmp, path)


def discard_stage(plan: StagePlan) -> bool:
    """Remove a leftover stage for `plan` (e.g. to give its space back); True if one existed."""
    if not plan.stage.exists():
        return False
    shutil.rmtree(plan.stage)
    return True
