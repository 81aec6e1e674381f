"""The seed's three-host fleet file (examples/fleet-pegasus.yaml) pointed at namespace hosts.

    path = fleet_config(fleet, tmp, model)            # what tests/hosts/test_serve_fleet.py serves
    path = fleet_config(fleet, tmp, model, direct=P)  # + the engine reachable without SSH

The hosts' addresses and SSH settings become the namespace hosts' (tests/support/netns.py),
the store root the test store, and a process deployment of the default model (the real
vLLM CPU engine) is added on stella. The seed's own gpt-oss-120b docker deployment on
pegasus stays: its model is not in the store, so it fails and stays visible.

`direct=PORT` (benchmarks only): the stella engine also binds stella's private address on
PORT, and a second deployment `smollm2-direct` is an endpoint at that address, so one
gateway reaches the same engine two ways: through the SSH forward, and without SSH.
"""

from __future__ import annotations

import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import netns

SEED_FLEET = Path(__file__).resolve().parents[2] / "examples" / "fleet-pegasus.yaml"
NAME = "smollm2-135m-instruct"
DIRECT = "smollm2-direct"
H100_XML = (
    Path(__file__).resolve().parents[1] / "fixtures/shared/fixtures/hardware/h100/nvidia-smi-q.xml"
)


def create(workdir: Path) -> netns.NetnsFleet:
    """pegasus, stella, venus as namespace hosts. pegasus gets a stand-in `nvidia-smi`
    printing a real H100 `nvidia-smi -q -x` capture and a stand-in `docker` (`docker info`
    only); stella and venus have neither. The caller destroys it (netns.destroy_fleet)."""
    fleet = netns.create_fleet(["pegasus", "stella", "venus"], workdir)
    pegasus = fleet.hosts["pegasus"]
    write_script(
        pegasus.bin_dir / "nvidia-smi",
        f'[ "$1 $2" = "-q -x" ] && exec cat {H100_XML}\necho "stand-in: only -q -x" >&2\nexit 2\n',
    )
    write_script(
        pegasus.bin_dir / "docker",
        '[ "$1" = info ] && { echo 27.3.1; exit 0; }\necho "stand-in docker: $*" >&2\nexit 1\n',
    )
    return fleet


def write_script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def host_entry(fleet: netns.NetnsFleet, name: str, **extra: Any) -> dict[str, Any]:
    """A `hosts:` entry in corral.yaml for namespace host `name`."""
    return {
        "address": fleet.hosts[name].address,
        "ssh": {
            "user": "root",
            "key": str(fleet.client_key),
            "known_hosts": str(fleet.known_hosts),
            "connect_timeout": 2,
        },
        **extra,
    }


def fleet_config(
    fleet: netns.NetnsFleet, tmp: Path, model: Path, *, direct: int | None = None
) -> Path:
    data: dict[str, Any] = yaml.safe_load(SEED_FLEET.read_text())
    data["home"] = str(tmp / "home")
    data["store"] = {"roots": [{"name": "nfs", "path": str(model.parents[2]), "read_only": True}]}
    for name, host in data["hosts"].items():
        host.update(host_entry(fleet, name))
        host["hardware"] = "cpu" if name == "stella" else host["hardware"]
    engine: dict[str, Any] = {
        "name": NAME, "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "recipe": "smollm2-135m-cpu",
        "host": "stella", "max_model_len": 2048, "startup_timeout": 600,
        "capabilities": {"tools": True, "auto_tool_choice": False},
    }  # fmt: skip
    data["deployments"].append(engine)
    if direct is not None:
        engine |= {"bind": "0.0.0.0", "port": direct}
        url = f"http://{fleet.hosts['stella'].address}:{direct}"
        data["deployments"].append({"name": DIRECT, "endpoint": url, "endpoint_model": NAME})
    path = tmp / "corral.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def models(base: str) -> dict[str, dict[str, Any]]:
    """`/v1/models` entries by id: corral's own fields (`routable`, `reason`) of each."""
    try:
        listed = httpx.get(f"{base}/v1/models", timeout=2).json()["data"]
    except (httpx.HTTPError, KeyError, ValueError):
        return {}
    return {entry["id"]: entry["corral"] for entry in listed}


def engine_pid(home: Path, host: str = "stella") -> int:
    """The pid the ledger recorded for the newest run on `host`."""
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        row = db.execute(
            "SELECT pid FROM run_hosts WHERE host = ? ORDER BY run_id DESC", (host,)
        ).fetchone()
    return int(row[0])


def stop_serve(serve: subprocess.Popen[str], config: Path, env: dict[str, str]) -> None:
    """Ctrl-C a `corral serve` (SIGKILL if it hangs), then `corral stop` the stella engine
    it leaves running (serve with a config keeps engines for the next serve to adopt)."""
    serve.send_signal(signal.SIGINT)
    try:
        serve.wait(60)
    except subprocess.TimeoutExpired:
        serve.kill()
        serve.wait()
    stop = [sys.executable, "-m", "corral", "stop", NAME, "--config", str(config)]
    subprocess.run(stop, env=env, capture_output=True, timeout=120, check=False)
