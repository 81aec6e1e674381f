"""The seed's three-host fleet file, pointed at namespace hosts, under `corral serve --config`.

examples/fleet-pegasus.yaml (Pegasus, Stella, Venus) with its addresses and SSH settings
replaced by the namespace hosts', its store root by the test store, and a process
deployment of the default model (the real vLLM CPU engine) added on stella. The seed's own
gpt-oss-120b docker deployment on pegasus stays in the file: its model is not in the store,
so it fails and stays visible while the rest serves. The engine on stella is started and
followed over SSH and answers through the gateway here. Then stella is partitioned: its
replica leaves rotation and a client gets an answer at once (no hang) while the engine keeps
running; after the heal the same engine is routed again. Times are printed (`pytest -s`).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from corral.runtime.ports import free_port
from tests.hosts.conftest import host_entry, ssh_host
from tests.support import netns

pytestmark = pytest.mark.timeout(2400)  # waiting for /tmp/corral-vllm.lock counts too
SEED_FLEET = Path(__file__).resolve().parents[2] / "examples" / "fleet-pegasus.yaml"
NAME = "smollm2-135m-instruct"


def fleet_config(fleet: netns.NetnsFleet, tmp: Path, model: Path) -> Path:
    data: dict[str, Any] = yaml.safe_load(SEED_FLEET.read_text())
    data["home"] = str(tmp / "home")
    data["store"] = {"roots": [{"name": "nfs", "path": str(model.parents[2]), "read_only": True}]}
    for name, host in data["hosts"].items():
        host.update(host_entry(fleet, name))
        host["hardware"] = "cpu" if name == "stella" else host["hardware"]
    data["deployments"].append(
        {"name": NAME, "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "recipe": "smollm2-135m-cpu",
         "host": "stella", "max_model_len": 2048, "startup_timeout": 600,
         "capabilities": {"tools": True, "auto_tool_choice": False}}
    )  # fmt: skip
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


def until(
    check: Callable[[], bool], limit: float, what: str, proc: subprocess.Popen[str], out: Path
) -> float:
    start = time.monotonic()
    while not check():
        if proc.poll() is not None:
            pytest.fail(f"corral serve exited: {out.read_text()[-4000:]}")
        if time.monotonic() - start > limit:
            pytest.fail(f"{what} not within {limit} s:\n{out.read_text()[-4000:]}")
        time.sleep(0.1)
    return time.monotonic() - start


def engine_pid(home: Path) -> int:
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        row = db.execute(
            "SELECT pid FROM run_hosts WHERE host = 'stella' ORDER BY run_id DESC"
        ).fetchone()
    return int(row[0])


def test_seed_fleet_serves_across_hosts_and_rides_out_a_partition(
    vllm_lock: None, default_model_path: Path, netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    config = fleet_config(netns_fleet, tmp_path, default_model_path)
    port = free_port()
    out = tmp_path / "serve.out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corral", "serve", "--config", str(config), "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        until(
            lambda: models(base).get(NAME, {}).get("routable") is True, 600, "routable", proc, out
        )
        listed = models(base)
        assert listed["gpt-oss-120b"]["routable"] is False  # the seed's own: model not here
        sdk = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)
        ask: dict[str, Any] = {
            "model": NAME,
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 8,
        }
        assert sdk.chat.completions.create(**ask).choices[0].message.content
        pid = engine_pid(tmp_path / "home")
        netns_fleet.partition("stella")
        gone = until(
            lambda: models(base).get(NAME, {}).get("routable") is False, 30, "unroutable", proc, out
        )
        print(f"\npartition → unroutable through corral serve: {gone:.1f} s")
        asked = time.monotonic()
        with pytest.raises(openai.APIStatusError):
            sdk.chat.completions.create(**ask)
        assert time.monotonic() - asked < 5, "no client hangs while the host is partitioned"
        netns_fleet.heal("stella")
        back = until(
            lambda: models(base).get(NAME, {}).get("routable") is True, 60, "routed", proc, out
        )
        print(f"heal → routed again: {back:.1f} s")
        assert sdk.chat.completions.create(**ask).choices[0].message.content
        assert engine_pid(tmp_path / "home") == pid, "no restart: the same run and engine"
        stella = ssh_host(netns_fleet, "stella", tmp_path, control="cm-check")
        assert stella.alive(pid, None)
        assert "host stella is unreachable" in out.read_text()
    finally:
        netns_fleet.heal("stella")
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stop = [sys.executable, "-m", "corral", "stop", NAME, "--config", str(config)]
        subprocess.run(stop, env=env, capture_output=True, timeout=120, check=False)
