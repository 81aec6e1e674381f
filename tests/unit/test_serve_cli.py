"""`corral serve` and `corral status` from the command line, without a real engine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from corral.config import Deployment
from corral.control.diagnose import StartFailure, explain
from corral.engines.base import Failure

CORRAL = [sys.executable, "-m", "corral"]


def run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRAL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [*CORRAL, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def config_file(tmp_path: Path, port: int) -> Path:
    dep = Deployment(name="m", model=str(tmp_path))
    data = {"gateway": {"port": port}, "deployments": [dep.model_dump(mode="json")]}
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_taken_gateway_port_is_named_before_any_engine_starts(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run(["serve", "--config", str(config_file(tmp_path, 8000)), "--port", str(port)],
                     tmp_path / "home")  # fmt: skip
    assert result.returncode != 0
    assert f"port {port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "runs").exists()  # no engine was launched


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_beyond_loopback_without_keys_is_refused_before_any_engine_starts(
    tmp_path: Path,
) -> None:
    cfg = config_file(tmp_path, _free_port())
    result = run(["serve", "--config", str(cfg), "--host", "0.0.0.0"], tmp_path / "home")
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without API keys" in result.stderr
    assert "--insecure-no-auth" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "runs").exists()  # no engine was launched


def test_status_without_runs_says_how_to_start_one(tmp_path: Path) -> None:
    result = run(["status"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "corral serve" in result.stdout
    as_json = run(["status", "--json"], tmp_path)
    assert json.loads(as_json.stdout) == []


def info(**kw: object) -> StartFailure:
    base: dict[str, object] = {
        "deployment": "d", "exited": True, "exit_code": 1, "last_phase": "load_weights",
        "failures": (), "log_path": "/x.log", "timeout": 600.0, "step": "health",
    }  # fmt: skip
    base.update(kw)
    return StartFailure(**base)  # type: ignore[arg-type]


def test_explain_prefers_a_known_failure_and_its_hint() -> None:
    known = Failure("oom", "torch.OutOfMemoryError: CUDA out of memory", "lower max_model_len")
    message, hint = explain(info(failures=(Failure("error", "RuntimeError: x", ""), known)))
    assert message == (
        "engine for 'd' exited with code 1 during load_weights: "
        "torch.OutOfMemoryError: CUDA out of memory"
    )
    assert hint == "lower max_model_len (full log: /x.log)"


def test_explain_without_a_known_failure() -> None:
    message, hint = explain(info(failures=(Failure("error", "RuntimeError: boom", ""),)))
    assert message.endswith("RuntimeError: boom")
    assert "last log lines" in hint
    message, hint = explain(info(exit_code=-9))
    assert "killed by SIGKILL" in message
    assert "OOM killer" in hint
    message, hint = explain(info(exited=False, step="generate", timeout=30.0))
    assert "not ready after 30 s during load_weights (stuck at readiness step: generate)" in message
    assert "startup_timeout" in hint
