"""Staging between roots: layout kept, verified, atomic, resumable after SIGKILL, disk full."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from corral.config import StoreRoot
from corral.errors import StoreError
from corral.store import resolve_model
from corral.store.catalog import scan_roots
from corral.store.hf_layout import repo_dir
from corral.store.manage import disk_usage
from corral.store.stage import STAGE_DIR, discard_stage, plan_stage, stage
from corral.store.verify import verify_folder
from tests.support.model_cache import (
    SYNTH_REPO,
    SYNTH_REVISION,
    add_hf_snapshot,
    blob_of,
    write_sharded_model,
)
from tests.unit.store.conftest import corral

MiB = 1024 * 1024


def _stage(source_root: Path, name: str, target: Path) -> Path:
    target.mkdir(exist_ok=True)
    source = resolve_model(name, [source_root])
    return stage(plan_stage(source, StoreRoot(name="t", path=target), name=name)).path


def test_stage_keeps_the_layout_and_verifies(hf_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "nvme"
    snap = _stage(hf_root, SYNTH_REPO, target)
    assert snap == repo_dir(target, SYNTH_REPO) / "snapshots" / SYNTH_REVISION
    link = snap / "model-00001-of-00003.safetensors"
    assert link.is_symlink()
    assert not os.readlink(link).startswith("/")
    assert os.readlink(link).startswith("../../blobs/")
    assert (repo_dir(target, SYNTH_REPO) / "refs" / "main").read_text() == SYNTH_REVISION
    assert verify_folder(snap).ok
    assert not (target / STAGE_DIR).exists()
    assert resolve_model(SYNTH_REPO, [target]) == snap


def test_stage_into_a_missing_root_is_refused(hf_root: Path, tmp_path: Path) -> None:
    source = resolve_model(SYNTH_REPO, [hf_root])
    with pytest.raises(StoreError, match="does not exist"):
        stage(plan_stage(source, StoreRoot(name="nvme", path=tmp_path / "unmounted")))
    assert not (tmp_path / "unmounted").exists()


def test_stage_is_idempotent(hf_root: Path, tmp_path: Path) -> None:
    _stage(hf_root, SYNTH_REPO, tmp_path / "t")
    plan = plan_stage(
        resolve_model(SYNTH_REPO, [hf_root]), StoreRoot(name="t", path=tmp_path / "t")
    )
    assert stage(plan).already_present


def test_second_revision_reuses_shared_blobs(
    hf_root: Path, tmp_path: Path, synth_source: Path
) -> None:
    target = tmp_path / "t"
    _stage(hf_root, SYNTH_REPO, target)
    (synth_source / "config.json").write_text('{"model_type": "llama", "hidden_size": 65}')
    add_hf_snapshot(hf_root, SYNTH_REPO, "2" * 40, synth_source)
    plan = plan_stage(
        resolve_model(f"{SYNTH_REPO}@{'2' * 40}", [hf_root]), StoreRoot(name="t", path=target)
    )
    result = stage(plan)
    config_size = (synth_source / "config.json").stat().st_size
    assert result.bytes_copied == config_size
    assert result.bytes_reused == plan.total - config_size
    revisions = {e.revision for e in scan_roots([StoreRoot(name="t", path=target)]).entries}
    assert revisions == {SYNTH_REVISION, "2" * 40}
    assert resolve_model(SYNTH_REPO, [target]).name == "2" * 40  # refs/main moved with it


def test_plain_folder_stages_as_a_plain_folder(hf_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    folder = _stage(hf_root, "acme/plain-model", target)
    assert folder == target / "acme" / "plain-model"
    assert verify_folder(folder).ok
    assert resolve_model("acme/plain-model", [target]) == folder


def test_corrupt_source_blob_is_refused_and_nothing_appears(hf_root: Path, tmp_path: Path) -> None:
    blob = blob_of(resolve_model(SYNTH_REPO, [hf_root]), "model-00003-of-00003.safetensors")
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x07")
    with pytest.raises(StoreError, match="hashes to"):
        _stage(hf_root, SYNTH_REPO, tmp_path / "t")
    assert scan_roots([StoreRoot(name="t", path=tmp_path / "t")]).entries == []
    assert [p.name for p in (tmp_path / "t").iterdir()] == [STAGE_DIR]
    assert not list((tmp_path / "t").rglob(f"{blob.name}*"))  # the bad copy is gone


class Big(NamedTuple):
    root: Path
    total: int


@pytest.fixture
def big_root(tmp_path: Path) -> Big:
    """A root with a 3-shard model of ~24 MiB (8 MiB shards)."""
    src = tmp_path / "big-src"
    write_sharded_model(src, floats_per_tensor=MiB)
    root = tmp_path / "big-root"
    add_hf_snapshot(root, SYNTH_REPO, SYNTH_REVISION, src)
    total = sum(p.stat().st_size for p in src.iterdir())
    return Big(root, total)


def _wait_for_part(target: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = [p for p in target.rglob("*.part") if p.stat().st_size > 0]
        if parts:
            return parts[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("no partial blob appeared")


def test_stage_killed_midway_resumes_and_ends_verified(big_root: Big, tmp_path: Path) -> None:
    target = tmp_path / "nvme"
    target.mkdir()
    argv = [sys.executable, "-m", "corral", "models", "stage", SYNTH_REPO,
            "--root", str(big_root.root), "--to", str(target), "--bwlimit", "4"]  # fmt: skip
    env = {**os.environ, "CORRAL_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        part = _wait_for_part(target, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert part.is_file()
    assert part.stat().st_size > 0
    # Killed: nothing is visible in the target, only the hidden stage.
    assert scan_roots([StoreRoot(name="t", path=target)]).entries == []
    with pytest.raises(StoreError):
        resolve_model(SYNTH_REPO, [target])
    [usage] = disk_usage([StoreRoot(name="t", path=target)])
    assert usage.models == 0
    assert usage.leftover_bytes >= part.stat().st_size

    done = corral("models", "stage", SYNTH_REPO, "--root", str(big_root.root),
                  "--to", str(target), "--json", home=tmp_path / "home")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["bytes_resumed"] > 0
    assert result["bytes_copied"] < big_root.total
    snap = resolve_model(SYNTH_REPO, [target])
    assert verify_folder(snap).ok
    assert not (target / STAGE_DIR).exists()


def test_full_disk_is_refused_before_copying(tmpfs: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_sharded_model(src, floats_per_tensor=MiB // 4)  # 3 x 2 MiB > the 4 MiB tmpfs
    root = tmp_path / "root"
    add_hf_snapshot(root, SYNTH_REPO, SYNTH_REVISION, src)
    with pytest.raises(StoreError, match="not enough room") as caught:
        _stage(root, SYNTH_REPO, tmpfs)
    assert "GiB free" in caught.value.message
    assert not any(p.is_file() and p.name != "lock" for p in tmpfs.rglob("*"))


def test_disk_filling_up_mid_copy_leaves_nothing_visible(
    tmpfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    write_sharded_model(src, floats_per_tensor=MiB // 4)
    root = tmp_path / "root"
    add_hf_snapshot(root, SYNTH_REPO, SYNTH_REVISION, src)
    real = shutil.disk_usage

    def roomy(path: str | os.PathLike[str]) -> shutil._ntuple_diskusage:
        # The free-space check passes (as when another writer fills the disk meanwhile);
        # the write itself then fails with a real ENOSPC from the tmpfs.
        usage = real(path)
        return usage._replace(free=usage.total * 1000)

    monkeypatch.setattr(shutil, "disk_usage", roomy)
    with pytest.raises(StoreError, match="filled up") as caught:
        _stage(root, SYNTH_REPO, tmpfs)
    assert "resumes" in (caught.value.hint or "")
    assert all(STAGE_DIR in p.parts for p in tmpfs.rglob("*.part"))  # hidden, resumable
    assert scan_roots([StoreRoot(name="t", path=tmpfs)]).entries == []
    assert [p.name for p in tmpfs.iterdir()] == [STAGE_DIR]


def test_discard_drops_an_unfinished_stage(hf_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    plan = plan_stage(resolve_model(SYNTH_REPO, [hf_root]), StoreRoot(name="t", path=target))
    plan.files_dir.mkdir(parents=True)
    (plan.files_dir / f"{plan.blobs[0].name}.part").write_bytes(b"half")
    assert discard_stage(plan)
    assert not plan.stage.exists()
    assert not discard_stage(plan)


def test_a_second_stager_of_the_same_model_stops_at_once(hf_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    plan = plan_stage(resolve_model(SYNTH_REPO, [hf_root]), StoreRoot(name="t", path=target))
    plan.stage.mkdir(parents=True)
    with (plan.stage / "lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StoreError, match="already copying"):
            stage(plan)
    assert stage(plan).path == plan.final
