"""Store fixtures: real Hugging Face-layout caches and plain folders in temporary roots."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.config import DEFAULT_STORE_NAME
from tests.support.model_cache import (
    SYNTH_REPO,
    SYNTH_REVISION,
    add_hf_snapshot,
    write_sharded_model,
)


@pytest.fixture(scope="session")
def default_cache(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding the default model (HF layout), shared read-only by the store tests."""
    root = tmp_path_factory.mktemp("default-cache")
    add_hf_snapshot(
        root, DEFAULT_STORE_NAME, default_model_path.name, default_model_path, link=True
    )
    return root


@pytest.fixture
def synth_source(tmp_path: Path) -> Path:
    """A flat folder with the synthetic 3-shard model."""
    folder = tmp_path / "synth-src"
    write_sharded_model(folder)
    return folder


@pytest.fixture
def hf_root(tmp_path: Path, synth_source: Path) -> Path:
    """A root with the synthetic model in HF layout (refs/main) and a plain folder model."""
    root = tmp_path / "root"
    add_hf_snapshot(root, SYNTH_REPO, SYNTH_REVISION, synth_source)
    shutil.copytree(synth_source, root / "acme" / "plain-model")
    return root


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    """A fresh 4 MiB tmpfs (root only); skips where mounting is not allowed."""
    mountpoint = Path(tempfile.mkdtemp(prefix="corral-store-tmpfs-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        mountpoint.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)
        mountpoint.rmdir()


def remount_read_only(mountpoint: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mountpoint)], check=True)


def corral(*args: str, home: Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess with CORRAL_HOME=home."""
    env = {"CORRAL_HOME": str(home), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        capture_output=True, text=True, env=env, check=check, timeout=120,
    )  # fmt: skip
