"""Resolve a deployment's `model:` to the folder an engine loads.

    resolve_model("openai/gpt-oss-120b", roots)
        -> <root>/models--openai--gpt-oss-120b/snapshots/<revision in refs/main>
    resolve_model("openai/gpt-oss-120b@b5c939d", roots)
        -> that snapshot (a full hash, a unique prefix of 7+ characters, or a ref name)
    resolve_model("/srv/models/my-finetune", roots)
        -> the folder itself

A store name is looked up in each root in order (first hit wins): the Hugging Face cache
layout (`models--org--name`), then a plain folder `<root>/org/name` or `<root>/name`
holding a `config.json`. Paths (starting with `/`, `~` or `.`) are taken as they are. Hidden
folders (`.corral-stage`, `.<rev>.partial-*`) are never candidates, so a half-copied model
is invisible. Not found → StoreError suggesting close names (difflib).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from corral.config import StoreRoot
from corral.errors import StoreError
from corral.store import hf_layout
from corral.store.roots import as_root

PATH_PREFIXES = ("/", "~", "./", "../")
MIN_PREFIX = 7


def resolve_model(name: str, roots: Sequence[StoreRoot | Path | str]) -> Path:
    """The snapshot (or plain model folder) for store name `name[@revision]`, or a path.

    Raises StoreError if it is not found, or if a snapshot link points at a missing blob.
    """
    found = find_model(name, roots)
    check_complete(found)
    return found


def find_model(name: str, roots: Sequence[StoreRoot | Path | str]) -> Path:
    """Like `resolve_model` but without the completeness check (verify and rm use this)."""
    if is_path_name(name):
        return _resolve_path(name)
    repo_id, revision = split_name(name)
    candidates = [as_root(r) for r in roots]
    for root in candidates:
        if not root.path.is_dir():
            continue
        found = find_in_root(root.path, repo_id, revision)
        if found is not None:
            return found.absolute()
    raise not_found(name, candidates)


def check_complete(folder: Path) -> None:
    """StoreError if a snapshot link points at a missing blob (a half-copied model).

    Only existence is checked (one stat per file, cheap on NFS); hashes are for `verify`.
    """
    broken = [p for p in folder.rglob("*") if p.is_symlink() and not p.exists()]
    if broken:
        names = ", ".join(p.relative_to(folder).as_posix() for p in broken[:3])
        raise StoreError(
            f"{folder} is incomplete: {len(broken)} file(s) point at missing blobs ({names})",
            hint="the copy was interrupted: stage it again with `corral models stage`, "
            "then `corral models verify` it",
        )


def is_path_name(name: str) -> bool:
    return name.startswith(PATH_PREFIXES) or name in (".", "..")


def split_name(name: str) -> tuple[str, str | None]:
    """`org/name@rev` → ("org/name", "rev"); a missing revision is None."""
    repo_id, sep, revision = name.strip().partition("@")
    if not repo_id or (sep and not revision):
        raise StoreError(
            f"invalid model name {name!r}",
            hint="write org/name, org/name@revision, or a path starting with / or ./",
        )
    return repo_id.strip("/"), (revision or None)


def find_in_root(root: Path, repo_id: str, revision: str | None) -> Path | None:
    """The model in one root: HF layout first, then a plain folder (no revision there)."""
    repo = hf_layout.repo_dir(root, repo_id)
    if repo.is_dir():
        snap = snapshot_for(repo, revision)
        if snap is not None:
            return snap
    if revision is None:
        for folder in (root / repo_id, root / repo_id.rsplit("/", 1)[-1]):
            if (folder / "config.json").is_file():
                return folder
    return None


def snapshot_for(repo: Path, revision: str | None) -> Path | None:
    """A complete snapshot of an HF-layout repo for a revision, ref name, or unique prefix."""
    snapshots = visible_snapshots(repo)
    wanted = revision or "main"
    ref = repo / "refs" / wanted
    if ref.is_file():
        target = ref.read_text().strip()
        if target in snapshots:
            return snapshots[target]
        raise StoreError(
            f"{ref} points at revision {target}, but {repo / 'snapshots' / target} is missing",
            hint="the copy is incomplete: run `corral models verify` and stage it again",
        )
    if revision is None:
        return _only_snapshot(repo, snapshots)
    if revision in snapshots:
        return snapshots[revision]
    matches = [rev for rev in snapshots if len(revision) >= MIN_PREFIX and rev.startswith(revision)]
    return snapshots[matches[0]] if len(matches) == 1 else None


def visible_snapshots(repo: Path) -> dict[str, Path]:
    """Snapshot folders by revision, leaving out hidden work folders."""
    folder = repo / "snapshots"
    if not folder.is_dir():
        return {}
    return {p.name: p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _only_snapshot(repo: Path, snapshots: dict[str, Path]) -> Path | None:
    # No refs/main (e.g. a copy made without refs): one snapshot is unambiguous, several are not.
    if len(snapshots) <= 1:
        return next(iter(snapshots.values()), None)
    revs = ", ".join(sorted(snapshots))
    raise StoreError(
        f"{repo} has several snapshots and no refs/main: {revs}",
        hint="name one as org/name@revision in corral.yaml",
    )


def _resolve_path(name: str) -> Path:
    path = Path(name).expanduser().resolve()
    if not path.is_dir():
        raise StoreError(
            f"model folder {path} does not exist",
            hint="give a folder holding config.json and the weights, or a store name org/name",
        )
    if (path / "snapshots").is_dir():  # a models--org--name folder: use its main snapshot
        snap = snapshot_for(path, None)
        if snap is not None:
            return snap
    return path


def not_found(name: str, roots: Sequence[StoreRoot]) -> StoreError:
    """StoreError naming the roots searched and the closest model names there."""
    from corral.store.catalog import known_names

    searched = ", ".join(f"{r.name} ({r.path})" for r in roots) or "none"
    missing = [str(r.path) for r in roots if not r.path.is_dir()]
    close = difflib.get_close_matches(name.partition("@")[0], known_names(roots), n=3, cutoff=0.5)
    message = f"model {name!r} is not in any store root (searched: {searched})"
    if missing:
        message += f"; missing roots: {', '.join(missing)}"
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None
    return StoreError(
        message, hint=hint or "see `corral models list`, or stage the model into a root"
    )
