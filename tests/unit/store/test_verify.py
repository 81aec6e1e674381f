"""verify_folder and `corral models verify` on real snapshots, intact and damaged."""

from __future__ import annotations

import json
from pathlib import Path

from corral.config import DEFAULT_STORE_NAME
from corral.store import resolve_model
from corral.store.verify import VerifyReport, verify_folder
from tests.support.model_cache import SYNTH_REPO, blob_of
from tests.unit.store.conftest import corral

SHARD1 = "model-00001-of-00003.safetensors"
SHARD2 = "model-00002-of-00003.safetensors"


def _checks(report: VerifyReport, name: str) -> list[str]:
    return next(f.checks for f in report.files if f.name == name)


def test_default_model_verifies(default_cache: Path) -> None:
    seen: list[int] = []
    report = verify_folder(resolve_model(DEFAULT_STORE_NAME, [default_cache]), on_bytes=seen.append)
    assert report.ok, report.failures()
    assert "sha256" in _checks(report, "model.safetensors")
    assert any(c.startswith("header ok") for c in _checks(report, "model.safetensors"))
    assert "json ok" in _checks(report, "config.json")
    assert sum(seen) == report.total_bytes


def test_sharded_model_verifies_with_its_index(hf_root: Path) -> None:
    report = verify_folder(resolve_model(SYNTH_REPO, [hf_root]), workers=3)
    assert report.ok, report.failures()
    assert _checks(report, "model.safetensors.index.json")[-1] == "index ok (6 tensors)"


def test_corrupted_blob_is_caught_by_its_hash(hf_root: Path) -> None:
    snap = resolve_model(SYNTH_REPO, [hf_root])
    blob = blob_of(snap, SHARD2)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in the tensor data: the header still parses
    blob.write_bytes(bytes(data))
    report = verify_folder(snap)
    assert not report.ok
    [failure] = report.failures()
    assert failure.startswith(f"{SHARD2}: sha256 mismatch: blob {blob.name} hashes to ")


def test_missing_blob_names_the_file(hf_root: Path) -> None:
    snap = resolve_model(SYNTH_REPO, [hf_root])
    blob_of(snap, SHARD1).unlink()
    failures = verify_folder(snap).failures()
    assert len(failures) == 1
    assert failures[0].startswith(f"{SHARD1}: missing")


def test_index_naming_an_absent_shard_and_tensor(hf_root: Path) -> None:
    folder = hf_root / "acme" / "plain-model"
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["layers.9.extra.weight"] = "model-00009-of-00009.safetensors"
    index["weight_map"]["layers.0.ghost.weight"] = SHARD1
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    failures = "\n".join(verify_folder(folder).failures())
    index_name = "model.safetensors.index.json"
    missing = "shard model-00009-of-00009.safetensors (for tensor layers.9.extra.weight) is missing"
    assert f"{index_name}: {missing}" in failures
    assert f"{index_name}: tensor layers.0.ghost.weight is not in shard {SHARD1}" in failures


def test_truncated_safetensors_and_broken_config(hf_root: Path) -> None:
    folder = hf_root / "acme" / "plain-model"
    shard = folder / SHARD1
    shard.write_bytes(shard.read_bytes()[:-100])
    (folder / "config.json").write_text("{not json")
    failures = verify_folder(folder).failures()
    assert any(f.startswith("config.json: does not parse as JSON") for f in failures)
    assert any(f.startswith(f"{SHARD1}: bad safetensors header: tensors end at") for f in failures)


def test_folder_without_config_fails(hf_root: Path) -> None:
    folder = hf_root / "acme" / "plain-model"
    (folder / "config.json").unlink()
    assert verify_folder(folder).failures() == [
        "config.json: missing (every model folder needs one)"
    ]


def test_cli_verify_exits_nonzero_naming_the_file(hf_root: Path, tmp_path: Path) -> None:
    ok = corral("models", "verify", SYNTH_REPO, "--root", str(hf_root), home=tmp_path)
    assert ok.returncode == 0, ok.stderr
    snap = resolve_model(SYNTH_REPO, [hf_root])
    blob = blob_of(snap, SHARD1)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")
    bad = corral("models", "verify", SYNTH_REPO, "--root", str(hf_root), "--json", home=tmp_path)
    assert bad.returncode == 1
    assert f"{SHARD1}: sha256 mismatch" in bad.stderr
    files = {f["name"]: f for f in json.loads(bad.stdout)["files"]}
    assert files[SHARD1]["errors"]
    assert not files[SHARD2]["errors"]


def test_cli_verify_unknown_model_suggests(hf_root: Path, tmp_path: Path) -> None:
    done = corral("models", "verify", "corral-test/tiny", "--root", str(hf_root), home=tmp_path)
    assert done.returncode == 1
    assert "did you mean 'corral-test/tiny-sharded'" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_verify_reports_a_half_copied_snapshot(hf_root: Path, tmp_path: Path) -> None:
    snap = resolve_model(SYNTH_REPO, [hf_root])
    blob_of(snap, SHARD2).unlink()
    done = corral("models", "verify", SYNTH_REPO, "--root", str(hf_root), home=tmp_path)
    assert done.returncode == 1
    assert f"{SHARD2}: missing: the snapshot points at ../../blobs/" in done.stderr
