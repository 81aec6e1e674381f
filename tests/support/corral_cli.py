"""Run the real `corral` CLI in a subprocess, and end what a failed `corral stop` left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from corral.config import default_deployment
from corral.ledger.db import open_ledger
from corral.ledger.launches import launch_of, runs_of
from corral.runtime.detached import alive, stop_group


def corral(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def kill_leftover(home: Path, name: str) -> None:
    """If `corral stop` failed, end the engine by the pid the ledger recorded."""
    with open_ledger(home / "ledger.sqlite3") as ledger:
        for run in runs_of(ledger, name):
            launch = launch_of(ledger, int(run["id"]))
            if launch and launch.pid and alive(launch.pid, launch.pid_started_at):
                stop_group(launch.pid, launch.pid_started_at)


def default_config_file(tmp: Path, model_path: Path, port: int) -> Path:
    """corral.yaml with the default deployment on `port`, its store root holding the
    converted default model (`model_path` is its snapshot folder)."""
    deployment = default_deployment().model_dump(mode="json", exclude_defaults=True)
    deployment["port"] = port
    data = {
        "home": str(tmp / "home"),
        "store": {"roots": [{"name": "test", "path": str(model_path.parents[2])}]},
        "deployments": [deployment],
    }
    path = tmp / "corral.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
