"""The catalog: every model in every root, with size, file count and revision.

Hugging Face-layout repos are read with `huggingface_hub.scan_cache_dir`, so the layout's
rules (refs, snapshots, blobs shared between revisions) are the library's, not ours. A
repo it cannot read (a broken symlink, a ref to a missing snapshot) becomes a `problem`,
not a crash. Plain folders (`<root>/name` or `<root>/org/name` holding `config.json`) are
walked directly. Hidden entries (`.corral-stage`, `.corral-work`, `.<rev>.partial-*`) are
corral's work in progress and never listed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from huggingface_hub import CachedRepoInfo, CachedRevisionInfo, scan_cache_dir

from corral.config import StoreRoot

HF_PREFIX = "models--"


@dataclass(frozen=True)
class ModelEntry:
    """One model snapshot (HF layout) or plain folder in one root."""

    name: str
    revision: str | None
    refs: tuple[str, ...]
    path: Path
    root: StoreRoot
    layout: Literal["hf", "plain"]
    size: int
    files: int

    @property
    def label(self) -> str:
        return f"{self.name}@{self.revision}" if self.revision else self.name


@dataclass
class Catalog:
    entries: list[ModelEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def scan_roots(roots: Sequence[StoreRoot]) -> Catalog:
    """Every model in `roots`; unreadable roots and corrupt repos become problems."""
    catalog = Catalog()
    for root in roots:
        if not root.path.is_dir():
            catalog.problems.append(f"root {root.name!r} is missing: {root.path}")
            continue
        try:
            catalog.entries.extend(_scan_hf(root, catalog.problems))
            catalog.entries.extend(_scan_plain(root))
        except PermissionError as exc:
            catalog.problems.append(f"root {root.name!r} is not readable: {exc}")
    return catalog


def known_names(roots: Sequence[StoreRoot]) -> list[str]:
    """Model names in `roots`, from folder names alone (cheap: no file is opened)."""
    names: list[str] = []
    for root in roots:
        if root.path.is_dir():
            names.extend(_hf_names(root.path))
            names.extend(name for name, _ in _plain_folders(root.path))
    return sorted(set(names))


def _hf_names(root: Path) -> Iterator[str]:
    for child in _children(root):
        if child.name.startswith(HF_PREFIX) and child.is_dir():
            yield child.name.removeprefix(HF_PREFIX).replace("--", "/")


def _scan_hf(root: StoreRoot, problems: list[str]) -> Iterator[ModelEntry]:
    if not any(_hf_names(root.path)):
        return
    info = scan_cache_dir(root.path)
    for warning in info.warnings:
        # Plain folders and corral's hidden work folders also show up as warnings; only
        # a broken `models--*` repo is a problem worth reporting.
        text = str(warning)
        if HF_PREFIX in text and "/.corral" not in text:
            problems.append(f"root {root.name!r}: {text}")
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            if not rev.commit_hash.startswith("."):
                yield _hf_entry(root, repo, rev)


def _hf_entry(root: StoreRoot, repo: CachedRepoInfo, rev: CachedRevisionInfo) -> ModelEntry:
    return ModelEntry(
        name=repo.repo_id,
        revision=rev.commit_hash,
        refs=tuple(sorted(rev.refs)),
        path=rev.snapshot_path,
        root=root,
        layout="hf",
        size=rev.size_on_disk,
        files=len(rev.files),
    )


def _scan_plain(root: StoreRoot) -> Iterator[ModelEntry]:
    for name, folder in _plain_folders(root.path):
        files = [p for p in folder.rglob("*") if p.is_file() and not _hidden(p, folder)]
        yield ModelEntry(
            name=name,
            revision=None,
            refs=(),
            path=folder,
            root=root,
            layout="plain",
            size=sum(p.stat().st_size for p in files),
            files=len(files),
        )


def _plain_folders(root: Path) -> Iterator[tuple[str, Path]]:
    """`<root>/name/config.json` → "name"; `<root>/org/name/config.json` → "org/name"."""
    for child in _children(root):
        if child.name.startswith(HF_PREFIX) or not child.is_dir():
            continue
        if (child / "config.json").is_file():
            yield child.name, child
            continue
        for grandchild in _children(child):
            if grandchild.is_dir() and (grandchild / "config.json").is_file():
                yield f"{child.name}/{grandchild.name}", grandchild


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except (PermissionError, NotADirectoryError):
        return []


def _hidden(path: Path, base: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(base).parts)


def locate(folder: Path, roots: Sequence[StoreRoot]) -> ModelEntry | None:
    """The entry for a model folder found in one of `roots` (built directly, no scan, so
    that a snapshot with missing blobs, which the HF scan rejects, can still be removed)."""
    real = folder.resolve()
    for root in roots:
        base = root.path.resolve() if root.path.is_dir() else None
        if base is not None and base in real.parents:
            return _entry_for(folder, real.relative_to(base), root)
    return None


def _entry_for(folder: Path, rel: Path, root: StoreRoot) -> ModelEntry:
    links = [p for p in folder.rglob("*") if not _hidden(p, folder) and not p.is_dir()]
    present = [p for p in links if p.exists()]
    hf = len(rel.parts) == 3 and rel.parts[0].startswith(HF_PREFIX) and rel.parts[1] == "snapshots"
    repo = folder.parent.parent
    ref_names = [
        r.name
        for r in (repo / "refs").glob("*")
        if r.is_file() and r.read_text().strip() == folder.name
    ]
    return ModelEntry(
        name=rel.parts[0].removeprefix(HF_PREFIX).replace("--", "/") if hf else rel.as_posix(),
        revision=folder.name if hf else None,
        refs=tuple(sorted(ref_names)) if hf else (),
        path=folder,
        root=root,
        layout="hf" if hf else "plain",
        size=sum(p.stat().st_size for p in present),
        files=len(links),
    )
