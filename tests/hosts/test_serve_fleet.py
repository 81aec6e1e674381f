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
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from corral.runtime.ports import free_port
from tests.hosts.conftest import ssh_host
from tests.support import netns
from tests.support.seed_fleet import NAME, engine_pid, fleet_config, models, stop_serve

pytestmark = pytest.mark.timeout(2400)  # waiting for /tmp/corral-vllm.lock counts too


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


def fleet_by_host(config: Path, env: dict[str, str], pid: int) -> None:
    """`corral status` and `corral report` show the fleet by host (the seed's "Related
    Systems"): the hardware serve's host check read there, and what runs where."""
    corral = [sys.executable, "-m", "corral"]

    def cli(*args: str) -> str:
        done = subprocess.run([*corral, *args, "--config", str(config)], env=env,
                              capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        return done.stdout

    status = cli("status")
    lines = {line.split()[0]: line for line in status.splitlines() if line.startswith("  ")}
    assert lines["pegasus"].startswith("  pegasus    h100: 1× NVIDIA H100 80GB HBM3"), status
    assert lines["pegasus"].endswith("; no active deployment"), status
    assert lines["stella"].startswith("  stella     cpu: "), status
    assert lines["stella"].endswith(f"; {NAME}"), status
    report = cli("report", NAME)
    assert "## Related Systems" in report, report
    systems = report.split("## Related Systems", 1)[1].split("\n## ", 1)[0]
    assert "- **stella**: cpu: " in systems, systems
    assert f"; this deployment, rank 0 (head, pid {pid})" in systems, systems
    assert "- **pegasus**: h100: 1× NVIDIA H100 80GB HBM3" in systems, systems
    assert "(no active deployment)" in systems, systems


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
        try:
            assert stella.alive(pid, None)
        finally:
            stella.close()
        assert "host stella is unreachable" in out.read_text()
        fleet_by_host(config, env, pid)
    finally:
        netns_fleet.heal("stella")
        stop_serve(proc, config, env)
