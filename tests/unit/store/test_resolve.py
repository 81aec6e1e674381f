"""resolve_model: store names, revisions, plain folders and paths against real roots."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from corral.config import DEFAULT_STORE_NAME, CorralConfig, StoreRoot
from corral.errors import StoreError
from corral.store import resolve_model, store_roots
from corral.store.hf_layout import repo_dir
from tests.support.model_cache import SYNTH_REPO, SYNTH_REVISION, add_hf_snapshot


def test_store_name_resolves_to_the_main_snapshot(hf_root: Path) -> None:
    found = resolve_model(SYNTH_REPO, [hf_root])
    assert found == repo_dir(hf_root, SYNTH_REPO) / "snapshots" / SYNTH_REVISION
    assert found.is_absolute()
    assert (found / "config.json").is_file()


@pytest.mark.parametrize("revision", [SYNTH_REVISION, SYNTH_REVISION[:8], "main"])
def test_revision_by_hash_prefix_or_ref(hf_root: Path, revision: str) -> None:
    found = resolve_model(f"{SYNTH_REPO}@{revision}", [hf_root])
    assert found.name == SYNTH_REVISION


def test_unknown_revision_is_not_found(hf_root: Path) -> None:
    with pytest.raises(StoreError, match="not in any store root"):
        resolve_model(f"{SYNTH_REPO}@{'2' * 40}", [hf_root])


def test_plain_folders_by_org_name_and_by_name(hf_root: Path) -> None:
    assert resolve_model("acme/plain-model", [hf_root]) == hf_root / "acme" / "plain-model"
    shutil.copytree(hf_root / "acme" / "plain-model", hf_root / "solo")
    assert resolve_model("someone/solo", [hf_root]) == hf_root / "solo"


def test_a_path_is_taken_as_is(hf_root: Path) -> None:
    folder = hf_root / "acme" / "plain-model"
    assert resolve_model(str(folder), []) == folder
    with pytest.raises(StoreError, match="does not exist"):
        resolve_model(str(folder / "nope"), [])


def test_an_hf_repo_folder_path_resolves_to_its_main_snapshot(hf_root: Path) -> None:
    found = resolve_model(str(repo_dir(hf_root, SYNTH_REPO)), [])
    assert found.name == SYNTH_REVISION


def test_missing_model_suggests_close_names(hf_root: Path) -> None:
    with pytest.raises(StoreError) as caught:
        resolve_model("corral-test/tiny-shardd", [hf_root])
    assert caught.value.hint is not None
    assert repr(SYNTH_REPO) in caught.value.hint
    assert str(hf_root) in caught.value.message


def test_missing_root_is_skipped_and_named(hf_root: Path, tmp_path: Path) -> None:
    ghost = tmp_path / "not-mounted"
    assert resolve_model(SYNTH_REPO, [ghost, hf_root]).name == SYNTH_REVISION
    with pytest.raises(StoreError, match=r"missing roots: .*not-mounted"):
        resolve_model("acme/none", [ghost, hf_root])


def test_first_root_wins(hf_root: Path, tmp_path: Path, synth_source: Path) -> None:
    fast = tmp_path / "fast"
    add_hf_snapshot(fast, SYNTH_REPO, SYNTH_REVISION, synth_source)
    assert resolve_model(SYNTH_REPO, [fast, hf_root]).is_relative_to(fast)
    assert resolve_model(SYNTH_REPO, [hf_root, fast]).is_relative_to(hf_root)


def test_hidden_partial_snapshots_are_invisible(tmp_path: Path, synth_source: Path) -> None:
    root = tmp_path / "r"
    snap = add_hf_snapshot(root, SYNTH_REPO, SYNTH_REVISION, synth_source)
    snap.rename(snap.with_name(f".{SYNTH_REVISION}.partial-1"))
    (snap.parent.parent / "refs" / "main").unlink()
    with pytest.raises(StoreError, match="not in any store root"):
        resolve_model(SYNTH_REPO, [root])


def test_ref_to_a_missing_snapshot_says_the_copy_is_incomplete(hf_root: Path) -> None:
    (repo_dir(hf_root, SYNTH_REPO) / "refs" / "main").write_text("f" * 40)
    with pytest.raises(StoreError, match="is missing") as caught:
        resolve_model(SYNTH_REPO, [hf_root])
    assert "incomplete" in (caught.value.hint or "")


def test_several_snapshots_without_refs_is_ambiguous(hf_root: Path, synth_source: Path) -> None:
    add_hf_snapshot(hf_root, SYNTH_REPO, "2" * 40, synth_source)
    for ref in (repo_dir(hf_root, SYNTH_REPO) / "refs").iterdir():
        ref.unlink()
    with pytest.raises(StoreError, match="several snapshots"):
        resolve_model(SYNTH_REPO, [hf_root])


@pytest.mark.parametrize("bad", ["", "org/name@", "@abc"])
def test_invalid_names(bad: str) -> None:
    with pytest.raises(StoreError, match="invalid model name"):
        resolve_model(bad, [])


def test_default_model_resolves_in_the_default_root(default_cache: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(default_cache)
    roots = store_roots(CorralConfig(), home)
    assert [r.name for r in roots] == ["default"]
    found = resolve_model(DEFAULT_STORE_NAME, roots)
    assert (found / "model.safetensors").is_file()


def test_configured_roots_come_before_the_default(tmp_path: Path) -> None:
    config = CorralConfig(store={"roots": [{"name": "nvme", "path": tmp_path / "nvme"}]})
    roots = store_roots(config, tmp_path / "home")
    assert [r.name for r in roots] == ["nvme", "default"]
    assert roots[1] == StoreRoot(name="default", path=tmp_path / "home" / "models")


def test_half_copied_snapshot_is_refused(hf_root: Path) -> None:
    snap = resolve_model(SYNTH_REPO, [hf_root])
    (snap / "model-00002-of-00003.safetensors").resolve().unlink()
    with pytest.raises(StoreError, match=r"incomplete: 1 file\(s\) point at missing blobs"):
        resolve_model(SYNTH_REPO, [hf_root])
