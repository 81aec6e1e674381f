"""Build real model stores on disk for the store tests.

`add_hf_snapshot` writes a model into a root in the Hugging Face cache layout (blobs named
by sha256, relative snapshot symlinks, refs/main) with corral's own installer;
`write_sharded_model` writes a synthetic multi-shard safetensors model (with the
`safetensors` package) plus its index and config.json.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from corral.store import hf_layout

SYNTH_REPO = "corral-test/tiny-sharded"
SYNTH_REVISION = "1" * 40


def write_sharded_model(folder: Path, *, shards: int = 3, floats_per_tensor: int = 4096) -> int:
    """A model folder with `shards` safetensors files, an index, and config.json.

    Returns the total bytes of the weights. Values are deterministic per tensor.
    """
    folder.mkdir(parents=True, exist_ok=True)
    weight_map: dict[str, str] = {}
    total = 0
    for shard in range(shards):
        name = f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {
            f"layers.{shard}.{part}.weight": np.full(
                (floats_per_tensor // 64, 64), shard + part / 10, dtype=np.float32
            )
            for part in range(2)
        }
        save_file(tensors, str(folder / name))
        weight_map.update(dict.fromkeys(tensors, name))
        total += (folder / name).stat().st_size
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    return total


def add_hf_snapshot(
    root: Path, repo_id: str, revision: str, files_from: Path, *, link: bool = False
) -> Path:
    """Install the files of `files_from` into `root` as `repo_id` at `revision`.

    Copies, or with `link` hard-links (cheap for the 260 MB default model; the blobs then
    share their inode with the source, so the source must never be written to).
    """
    work = root / ".build" / repo_id.replace("/", "--")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for src in files_from.iterdir():
        if src.is_file():
            if link:
                _link_or_copy(src.resolve(), work / src.name)
            else:
                shutil.copy2(src.resolve(), work / src.name)
    snap = hf_layout.install_snapshot(work, root, repo_id, revision)
    shutil.rmtree(root / ".build", ignore_errors=True)
    return snap


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def blob_of(snapshot: Path, name: str) -> Path:
    return (snapshot / name).resolve()
