"""Bad input to a llama-server deployment, through `corral deploy` as a user runs it:
no binary, a file that is not a GGUF model, a model too large for memory (all refused
before anything starts), and the engine's own `-ngl` failure line recognised and explained.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from corral.ledger.db import open_ledger
from corral.ledger.launches import runs_of
from tests.integration.conftest import LLAMA_NAME, llama_config
from tests.support.vllm import free_port

# The -ngl failure as llama.cpp 0.5.0-dev logs it (format strings of common/fit.cpp,
# ggml-cuda.cu, llama-model.cpp, server.cpp): a GPU is needed to provoke it for real.
NGL_FAILURE = """\
0.00.100.000 I srv  llama_server: initializing ...
0.00.200.000 I srv    load_model: loading model '/m/model.gguf'
0.00.900.000 W common_fit_params: failed to fit params to free device memory: n_gpu_layers already set by user to 99, abort
0.01.300.000 E ggml_backend_cuda_buffer_type_alloc_buffer: allocating 61024.00 MiB on device 0: cudaMalloc failed: out of memory
0.01.300.100 E llama_model_load: error loading model: unable to allocate CUDA0 buffer
0.01.300.300 E srv  llama_server: exiting due to model loading error
"""  # noqa: E501


def deploy(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = ["deploy", LLAMA_NAME, "--no-verify", "--config", str(config)]
    return subprocess.run(
        [sys.executable, "-m", "corral", *argv],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "200", **env},
    )  # fmt: skip


def no_runs(home: Path) -> bool:
    path = home / "ledger.sqlite3"
    if not path.exists():
        return True
    with open_ledger(path) as ledger:
        return not runs_of(ledger, LLAMA_NAME)


def fake_binary(tmp_path: Path, script: str) -> Path:
    exe = tmp_path / "llama-server"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    return exe


def test_no_binary_says_how_to_get_one(tmp_path: Path) -> None:
    config = llama_config(tmp_path, free_port())
    env = {"CORRAL_LLAMA_SERVER": "", "PATH": "/nonexistent", "HOME": str(tmp_path)}
    env["CORRAL_LLAMA_SERVER_CACHE"] = str(tmp_path / "empty-cache")
    result = deploy(config, env)
    assert result.returncode != 0
    assert "no llama-server binary" in result.stderr
    assert "scripts/build_llama_server.sh" in result.stderr
    assert no_runs(tmp_path / "home")


def test_a_file_that_is_not_a_gguf_is_refused_before_launch(tmp_path: Path) -> None:
    fake = tmp_path / "smollm2-half-downloaded.gguf"  # matches the recipe by name
    fake.write_text("<html>404 Not Found</html>")
    config = llama_config(tmp_path, free_port(), model=str(fake))
    started = tmp_path / "started"
    exe = fake_binary(tmp_path, f"touch {started}\n")
    result = deploy(config, {"CORRAL_LLAMA_SERVER": str(exe)})
    assert result.returncode != 0
    assert "is not a usable GGUF model file" in result.stderr
    assert not started.exists()
    assert no_runs(tmp_path / "home")


def test_too_large_for_memory_is_refused_with_the_planners_figures(tmp_path: Path) -> None:
    config = llama_config(tmp_path, free_port(), args=["--ctx-size", "3000000"])
    exe = fake_binary(tmp_path, "exit 1\n")
    result = deploy(config, {"CORRAL_LLAMA_SERVER": str(exe)})
    assert result.returncode != 0
    text = " ".join(result.stderr.split())
    assert "does not fit: weights 0.09 GiB + KV cache 64.37 GiB (3,000,000 tokens" in text
    assert "this machine's memory has" in text
    assert no_runs(tmp_path / "home")


def test_ngl_failure_is_recognised_and_explained(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    log.write_text(NGL_FAILURE)
    config = llama_config(tmp_path, free_port())
    exe = fake_binary(tmp_path, f"cat {log}\nexit 1\n")
    result = deploy(config, {"CORRAL_LLAMA_SERVER": str(exe)})
    assert result.returncode != 0
    text = " ".join(result.stderr.split())
    assert "gpu_layers_do_not_fit" in text
    assert "lower -ngl" in text
    assert "exited with code 1 during" in text
    data = yaml.safe_load(config.read_text())
    assert data["deployments"][0]["engine"] == "llama-server"
