"""Prove a model folder is intact before an engine spends a minute loading it.

Checks, each reported per file:
  * every file the snapshot references exists (a snapshot symlink whose blob is gone fails);
  * blobs named by their hash are re-hashed: 64 hex = sha256 (Hugging Face's LFS files),
    40 hex = git's blob sha1 (small files the hub stores in git). Hashing runs on a thread
    pool because hashlib releases the GIL, so several reads are in flight (NFS likes that);
  * every `.safetensors` header parses and its tensors fill the file exactly;
  * every `*.safetensors.index.json` names shards that exist and tensors those shards hold;
  * `config.json` exists and parses, and so does every other `.json`.

Plain folders have no hash names: their files get the structural checks only.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.store.hf_layout import CHUNK

SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")
GIT_SHA1_NAME = re.compile(r"^[0-9a-f]{40}$")
MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit on the JSON header
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
SUB_BYTE = {"F4", "F6_E2M3", "F6_E3M2"}  # packed types: the byte count can't be checked simply

OnBytes = Callable[[int], None]


@dataclass
class FileCheck:
    """What was checked for one file of the snapshot, and what failed."""

    name: str
    size: int = 0
    checks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class VerifyReport:
    folder: Path
    files: list[FileCheck] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(f.ok for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def failures(self) -> list[str]:
        """One line per problem, each naming the file."""
        lines = list(self.errors)
        lines += [f"{f.name}: {e}" for f in self.files for e in f.errors]
        return lines


def _noop(_n: int) -> None:
    return None


def verify_folder(
    folder: Path, *, workers: int = 4, rehash: bool = True, on_bytes: OnBytes = _noop
) -> VerifyReport:
    """Run every check on a snapshot or plain model folder; never raises for bad files."""
    report = VerifyReport(folder=folder)
    checks = {name: _existence(folder, name) for name in list_files(folder)}
    report.files = [checks[name] for name in sorted(checks)]
    if rehash:
        _rehash_all(folder, [c for c in report.files if c.ok], workers, on_bytes)
    headers = _check_safetensors(folder, checks)
    _check_indexes(folder, checks, headers)
    _check_json(folder, checks)
    if "config.json" not in checks:
        report.errors.append("config.json: missing (every model folder needs one)")
    return report


def list_files(folder: Path) -> list[str]:
    """Relative names of the files a snapshot references (symlinks included, hidden left out)."""
    names = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_symlink() or path.is_file():
            names.append(rel.as_posix())
    return names


def _existence(folder: Path, name: str) -> FileCheck:
    path = folder / name
    check = FileCheck(name=name)
    if not path.exists():
        target = path.readlink() if path.is_symlink() else path
        check.errors.append(f"missing: the snapshot points at {target}, which does not exist")
        return check
    check.size = path.stat().st_size
    check.checks.append("exists")
    return check


def hashed_bytes(folder: Path) -> int:
    """Bytes `verify_folder` will re-hash: the existing files behind hash-named blobs."""
    total = 0
    for name in list_files(folder):
        blob = (folder / name).resolve()
        if (folder / name).is_symlink() and blob.is_file() and expected_digest(blob.name):
            total += blob.stat().st_size
    return total


def expected_digest(blob_name: str) -> str | None:
    """Which hash a blob's name claims: 'sha256', 'git-sha1', or None (not hash-named)."""
    if SHA256_NAME.match(blob_name):
        return "sha256"
    if GIT_SHA1_NAME.match(blob_name):
        return "git-sha1"
    return None


def new_hasher(kind: str, size: int) -> Any:
    """A hashlib object for `kind`; git's blob hash prefixes 'blob <size>\\0'."""
    if kind == "sha256":
        return hashlib.sha256()
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"blob {size}\0".encode())
    return digest


def _rehash_all(folder: Path, checks: list[FileCheck], workers: int, on_bytes: OnBytes) -> None:
    jobs = []
    for check in checks:
        path = folder / check.name
        kind = expected_digest(path.resolve().name) if path.is_symlink() else None
        if kind is None:
            check.checks.append("not hash-named")
        else:
            jobs.append((check, path, kind))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(_rehash_one, c, p, k, on_bytes) for c, p, k in jobs]
        for future in futures:
            future.result()


def _rehash_one(check: FileCheck, path: Path, kind: str, on_bytes: OnBytes) -> None:
    blob = path.resolve()
    digest = new_hasher(kind, check.size)
    try:
        with blob.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                on_bytes(len(chunk))
    except OSError as exc:
        check.errors.append(f"unreadable blob {blob}: {exc.strerror}")
        return
    if digest.hexdigest() == blob.name:
        check.checks.append(kind)
    else:
        check.errors.append(f"{kind} mismatch: blob {blob.name} hashes to {digest.hexdigest()}")


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The parsed header; ValueError saying what is wrong if it isn't a valid one."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            raise ValueError("shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", raw)
        if length > MAX_HEADER or 8 + length > size:
            raise ValueError(f"header length {length} does not fit the file ({size} bytes)")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    _check_offsets(header, size - 8 - length)
    return header


def _check_offsets(header: dict[str, Any], data_bytes: int) -> None:
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, stop = info["data_offsets"]
        count = 1
        for dim in info["shape"]:
            count *= dim
        width = DTYPE_BYTES.get(info["dtype"])
        if width and info["dtype"] not in SUB_BYTE and stop - begin != count * width:
            raise ValueError(f"tensor {name}: {stop - begin} bytes for shape {info['shape']}")
        end = max(end, stop)
    if end != data_bytes:
        raise ValueError(f"tensors end at byte {end} but the file holds {data_bytes} data bytes")


def _check_safetensors(folder: Path, checks: dict[str, FileCheck]) -> dict[str, set[str]]:
    tensors: dict[str, set[str]] = {}
    for name, check in checks.items():
        if not name.endswith(".safetensors") or not check.ok:
            continue
        try:
            header = read_safetensors_header(folder / name)
        except (ValueError, KeyError, TypeError) as exc:
            check.errors.append(f"bad safetensors header: {exc}")
            continue
        tensors[name] = {k for k in header if k != "__metadata__"}
        check.checks.append(f"header ok ({len(tensors[name])} tensors)")
    return tensors


def _check_indexes(
    folder: Path, checks: dict[str, FileCheck], headers: dict[str, set[str]]
) -> None:
    for name, check in checks.items():
        if not name.endswith(".safetensors.index.json") or not check.ok:
            continue
        try:
            weight_map = json.loads((folder / name).read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            check.errors.append(f"unreadable index: {exc!r}")
            continue
        base = str(Path(name).parent) if "/" in name else ""
        problems = list(_index_problems(weight_map, base, checks, headers))
        check.errors.extend(problems[:20])
        if not problems:
            check.checks.append(f"index ok ({len(weight_map)} tensors)")


def _index_problems(
    weight_map: dict[str, str], base: str, checks: dict[str, FileCheck],
    headers: dict[str, set[str]],
) -> Iterable[str]:  # fmt: skip
    for tensor, shard in sorted(weight_map.items()):
        key = f"{base}/{shard}" if base else shard
        if key not in checks:
            yield f"shard {shard} (for tensor {tensor}) is missing"
        elif key in headers and tensor not in headers[key]:
            yield f"tensor {tensor} is not in shard {shard}"


def _check_json(folder: Path, checks: dict[str, FileCheck]) -> None:
    for name, check in checks.items():
        if not name.endswith(".json") or not check.ok or name.endswith(".index.json"):
            continue
        try:
            json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            check.errors.append(f"does not parse as JSON: {exc}")
            continue
        check.checks.append("json ok")
