"""`corral models list/du/rm/stage` through the real CLI, on roots from corral.yaml or --root."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from corral.ledger.db import open_ledger
from corral.paths import ledger_path
from corral.store import resolve_model
from corral.store.hf_layout import repo_dir
from corral.store.verify import verify_folder
from tests.support.model_cache import SYNTH_REPO, SYNTH_REVISION, add_hf_snapshot
from tests.unit.store.conftest import corral, remount_read_only

REV2 = "2" * 40


def _config(tmp_path: Path, hf_root: Path, *, read_only: bool = False) -> Path:
    data = {
        "version": 1,
        "store": {
            "roots": [
                {"name": "share", "path": str(hf_root), "read_only": read_only},
                {"name": "nvme", "path": str(tmp_path / "nvme")},
            ]
        },
        "deployments": [
            {"name": "tiny", "model": SYNTH_REPO},
            {"name": "plain", "model": "acme/plain-model"},
            {"name": "elsewhere", "model": "nobody/absent"},
        ],
    }
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _list(*args: str, home: Path) -> dict[str, Any]:
    done = corral("models", "list", "--json", *args, home=home)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_list_names_revision_size_files_root_and_deployments(hf_root: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, hf_root)
    listing = _list("--config", str(config), home=tmp_path)
    by_name = {m["name"]: m for m in listing["models"]}
    tiny = by_name[SYNTH_REPO]
    assert (tiny["revision"], tiny["refs"], tiny["root"]) == (SYNTH_REVISION, ["main"], "share")
    assert tiny["files"] == 5
    assert tiny["layout"] == "hf"
    snap = resolve_model(SYNTH_REPO, [hf_root])
    assert tiny["size_bytes"] == sum(p.stat().st_size for p in snap.iterdir())
    assert tiny["deployments"] == ["tiny"]
    assert by_name["acme/plain-model"]["deployments"] == ["plain"]
    assert by_name["acme/plain-model"]["layout"] == "plain"
    assert any("nvme" in p for p in listing["problems"])  # configured but not created yet


def test_list_with_root_flags_and_the_default_model(default_cache: Path, hf_root: Path) -> None:
    listing = _list("--root", str(default_cache), "--root", str(hf_root), home=hf_root.parent)
    names = [m["name"] for m in listing["models"]]
    assert names == ["HuggingFaceTB/SmolLM2-135M-Instruct", SYNTH_REPO, "acme/plain-model"]
    assert listing["models"][0]["deployments"] == ["smollm2-135m-instruct"]


def test_missing_root_flag_is_a_clear_error(tmp_path: Path) -> None:
    done = corral("models", "list", "--root", str(tmp_path / "nope"), home=tmp_path)
    assert done.returncode == 1
    assert f"does not exist: {tmp_path / 'nope'}" in done.stderr
    assert "Traceback" not in done.stderr


def test_read_only_mount_works_for_list_and_verify(
    tmpfs: Path, synth_source: Path, hf_root: Path
) -> None:
    add_hf_snapshot(tmpfs, SYNTH_REPO, SYNTH_REVISION, synth_source)
    remount_read_only(tmpfs)
    home = synth_source.parent
    assert [m["name"] for m in _list("--root", str(tmpfs), home=home)["models"]] == [SYNTH_REPO]
    verified = corral("models", "verify", SYNTH_REPO, "--root", str(tmpfs), home=home)
    assert verified.returncode == 0, verified.stderr
    refused = corral("models", "rm", SYNTH_REPO, "--root", str(tmpfs), "--yes", home=home)
    assert refused.returncode == 1
    assert "cannot write into store root" in refused.stderr
    staged = corral("models", "stage", "acme/plain-model", "--root", str(hf_root),
                    "--to", str(tmpfs), home=home)  # fmt: skip
    assert staged.returncode == 1
    assert "cannot write into store root" in staged.stderr
    assert "Read-only file system" in staged.stderr


def test_rm_keeps_blobs_another_revision_uses(
    hf_root: Path, synth_source: Path, tmp_path: Path
) -> None:
    (synth_source / "config.json").write_text('{"model_type": "llama", "hidden_size": 65}')
    add_hf_snapshot(hf_root, SYNTH_REPO, REV2, synth_source)  # refs/main → REV2
    done = corral("models", "rm", f"{SYNTH_REPO}@{REV2}", "--root", str(hf_root), "--yes",
                  home=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (repo_dir(hf_root, SYNTH_REPO) / "snapshots" / REV2).exists()
    assert not (repo_dir(hf_root, SYNTH_REPO) / "refs" / "main").exists()
    remaining = resolve_model(SYNTH_REPO, [hf_root])
    assert remaining.name == SYNTH_REVISION
    assert verify_folder(remaining).ok


def test_rm_last_revision_removes_the_repo(hf_root: Path, tmp_path: Path) -> None:
    done = corral("models", "rm", SYNTH_REPO, "--root", str(hf_root), "-y", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not repo_dir(hf_root, SYNTH_REPO).exists()
    assert (hf_root / "acme" / "plain-model").is_dir()


def test_rm_refuses_while_a_running_deployment_uses_it(hf_root: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, hf_root)
    with open_ledger(ledger_path(tmp_path)) as ledger, ledger.transaction() as conn:
        conn.execute("INSERT INTO deployments (id, name, created_at) VALUES (1, 'tiny', ?)",
                     (time.time(),))  # fmt: skip
        conn.execute(
            "INSERT INTO runs (id, deployment_id, started_at, state, runtime, engine, command,"
            " config_json) VALUES (7, 1, ?, 'ready', 'process', 'vllm', 'vllm serve', '{}')",
            (time.time(),),
        )
    done = corral("models", "rm", SYNTH_REPO, "--config", str(config), "-y", home=tmp_path)
    assert done.returncode == 1
    assert "used by running deployments: tiny (run 7)" in done.stderr
    assert resolve_model(SYNTH_REPO, [hf_root]).is_dir()
    with open_ledger(ledger_path(tmp_path)) as ledger, ledger.transaction() as conn:
        conn.execute("UPDATE runs SET state = 'stopped', ended_at = ? WHERE id = 7", (time.time(),))
    done = corral("models", "rm", SYNTH_REPO, "--config", str(config), "-y", home=tmp_path)
    assert done.returncode == 0, done.stderr


def test_rm_refuses_a_read_only_root_from_the_config(hf_root: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, hf_root, read_only=True)
    done = corral("models", "rm", "acme/plain-model", "--config", str(config), "-y", home=tmp_path)
    assert done.returncode == 1
    assert "marked read_only" in done.stderr
    assert (hf_root / "acme" / "plain-model").is_dir()


def test_stage_by_root_names_and_du(hf_root: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, hf_root)
    (tmp_path / "nvme").mkdir()
    done = corral("models", "stage", SYNTH_REPO, "--to", "nvme", "--config", str(config),
                  "--json", home=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    staged = json.loads(done.stdout)
    assert staged["bytes_copied"] == staged["bytes_total"] > 0
    assert Path(staged["path"]).is_relative_to(tmp_path / "nvme")
    du = corral("models", "du", "--config", str(config), "--json", home=tmp_path)
    usage = {u["root"]: u for u in json.loads(du.stdout)}
    assert usage["nvme"]["models"] == 1
    assert usage["nvme"]["model_bytes"] == staged["bytes_total"]
    assert usage["share"]["models"] == 2
    assert usage["nvme"]["leftover_bytes"] == 0


def test_broken_snapshot_is_a_listed_problem_and_can_be_removed(
    hf_root: Path, tmp_path: Path
) -> None:
    snap = resolve_model(SYNTH_REPO, [hf_root])
    (snap / "config.json").resolve().unlink()
    listing = _list("--root", str(hf_root), home=tmp_path)
    assert [m["name"] for m in listing["models"]] == ["acme/plain-model"]
    assert any("Blob missing" in p for p in listing["problems"])
    done = corral("models", "rm", SYNTH_REPO, "--root", str(hf_root), "-y", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not repo_dir(hf_root, SYNTH_REPO).exists()
