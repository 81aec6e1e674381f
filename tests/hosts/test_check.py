"""`corral hosts check` against namespace hosts: what is there, and each bad case named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.hosts.conftest import write_config
from tests.support import netns
from tests.support.seed_fleet import host_entry


def _config(fleet: netns.NetnsFleet, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    (store / "config.json").write_text("{}")
    gpt_oss = {"model": "openai/gpt-oss-120b", "runtime": "docker", "recipe": "gpt-oss-120b-gb10"}
    return write_config(
        tmp_path / "corral.yaml",
        {
            "version": 1,
            "home": str(tmp_path / "home"),
            "store": {"roots": [{"name": "nfs", "path": str(store), "read_only": True}]},
            "hosts": {
                "pegasus": host_entry(fleet, "pegasus"),
                "stella": host_entry(fleet, "stella", mounts={"nfs": str(tmp_path / "absent")}),
                "venus": host_entry(fleet, "venus"),
            },
            "deployments": [
                {"name": "big", "host": "pegasus", "bind": "0.0.0.0", **gpt_oss},
                {"name": "big-too", "host": "stella", **gpt_oss},
                {"name": "small", "host": "stella", "model": "HuggingFaceTB/SmolLM2-135M-Instruct"},
            ],
        },
    )


def _check(config: Path, *names: str) -> tuple[int, list[dict[str, Any]]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral",
            "hosts",
            "check",
            "--config",
            str(config),
            "--json",
            *names,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def _findings(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["what"]: f for f in report["findings"]}


def test_a_ready_host_reports_gpus_docker_memory_store_and_clock(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    code, reports = _check(_config(netns_fleet, tmp_path), "pegasus")
    assert code == 0, reports
    (report,) = reports
    found = _findings(report)
    assert all(f["level"] != "error" for f in found.values())
    assert report["hardware"]["kind"] == "h100"  # the stand-in prints a real H100 capture
    assert report["hardware"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert found["docker"]["detail"].startswith("docker 27.3.1")
    assert "GiB available" in found["memory"]["detail"]
    assert found["store:nfs"]["level"] in {"ok", "warn"}
    assert found["bind:big"]["level"] == "warn"
    assert "binds 0.0.0.0" in found["bind:big"]["detail"]
    assert abs(report["clock_skew_s"]) < 1.0  # one clock: the namespaces share it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "corral", "status", "--config", str(tmp_path / "corral.yaml")]
    status = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=True)
    assert "pegasus    h100: 1× NVIDIA H100 80GB HBM3" in status.stdout  # the fleet by host


def test_each_problem_is_named_with_the_host_and_a_remedy(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    config = _config(netns_fleet, tmp_path)
    netns_fleet.partition("venus")
    try:
        code, reports = _check(config)
    finally:
        netns_fleet.heal("venus")
    assert code == 1
    by_host = {r["host"]: r for r in reports}
    assert by_host["pegasus"]["ok"]
    stella = _findings(by_host["stella"])
    assert stella["docker"]["level"] == "error"
    assert "big-too" in stella["docker"]["detail"]
    assert stella["gpus:big-too"]["detail"] == "big-too needs 1 GPU(s), the host has 0"
    assert stella["engine:vllm"]["level"] == "error"
    assert "small" in stella["engine:vllm"]["detail"]
    assert "absent is missing" in stella["store:nfs"]["detail"]
    assert "hosts.stella.mounts.nfs" in stella["store:nfs"]["hint"]
    venus = _findings(by_host["venus"])
    assert venus["ssh"]["level"] == "error"
    assert "cannot reach root@10.77.0.13" in venus["ssh"]["detail"]
    assert not by_host["venus"]["ok"]


def test_hw_host_reads_the_hosts_hardware_over_ssh(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    config = _config(netns_fleet, tmp_path)
    argv = [sys.executable, "-m", "corral", "hw", "--json", "--config", str(config)]
    remote = subprocess.run(
        [*argv, "--host", "pegasus"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert json.loads(remote.stdout)["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    bare = subprocess.run(
        [*argv, "--host", "stella"], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    assert json.loads(bare.stdout)["kind"] == "cpu"


def test_preflight_blocks_only_the_deployments_of_a_bad_host(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    from corral.config import load_config
    from corral.hosts.check import blocked, preflight
    from corral.hosts.ssh import client_for

    config = load_config(_config(netns_fleet, tmp_path))
    reports = preflight(config, lambda name: client_for(config, name, tmp_path / "home"))
    assert sorted(reports) == ["pegasus", "stella"]  # venus runs nothing: not checked
    stopped = blocked(config, reports)
    assert sorted(stopped) == ["big-too", "small"]  # both on stella; pegasus's "big" goes on
    assert str(stopped["small"]).startswith("host stella: docker: docker is not ")
