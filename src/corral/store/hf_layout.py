"""Write a model folder into a store root in the Hugging Face cache layout.

    <root>/models--<org>--<name>/
        blobs/<sha256>                 file contents, named by their hash
        snapshots/<revision>/<file>    relative symlinks into blobs/
        refs/main                      the revision `main` points at

Atomic: blobs are content-addressed (a leftover blob is harmless and reused), the snapshot
is assembled in a hidden sibling folder and renamed into place, and `refs/main` is replaced
last. A snapshot folder that exists is therefore complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

CHUNK = 8 * 1024 * 1024


def repo_folder_name(repo_id: str) -> str:
    """`org/name` → `models--org--name`, as huggingface_hub names it."""
    return "models--" + repo_id.replace("/", "--")


def repo_dir(root: Path, repo_id: str) -> Path:
    return root / repo_folder_name(repo_id)


def snapshot_dir(root: Path, repo_id: str, revision: str) -> Path:
    return repo_dir(root, repo_id) / "snapshots" / revision


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if on_bytes:
                on_bytes(len(chunk))
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def install_snapshot(source: Path, root: Path, repo_id: str, revision: str) -> Path:
    """Move the files of `source` (a flat model folder) into `root` as snapshot `revision`."""
    repo = repo_dir(root, repo_id)
    blobs = repo / "blobs"
    final = repo / "snapshots" / revision
    staging = repo / "snapshots" / f".{revision}.partial-{os.getpid()}"
    blobs.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for file in sorted(p for p in source.iterdir() if p.is_file()):
        blob = blobs / sha256_file(file)
        if not blob.exists():
            shutil.move(str(file), blob)
        (staging / file.name).symlink_to(os.path.relpath(blob, staging))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    _atomic_write_text(repo / "refs" / "main", revision)
    return final
