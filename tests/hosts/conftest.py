"""Namespace hosts with real sshd for the hosts tests (one fleet per session, torn down after).

pegasus: a stand-in `nvidia-smi` printing a real H100 `nvidia-smi -q -x` capture, and a
stand-in `docker`; stella: neither; venus: reachable but unused unless a test partitions it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.hosts.ssh import SshClient, SshTarget
from corral.hosts.sshhost import SshHost
from tests.support import netns, seed_fleet

REPO = Path(__file__).resolve().parents[2]
# A scripted engine started on a namespace host: the module lives in the tests' support code.
SCRIPTED = (sys.executable, "-m", "tests.support.scripted_engine")
SCRIPTED_ENV = {"PYTHONPATH": f"{REPO}:{REPO / 'src'}"}


@pytest.fixture(scope="session")
def netns_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[netns.NetnsFleet]:
    reason = netns.available()
    if reason:
        pytest.skip(f"namespace hosts unavailable: {reason}")
    fleet = seed_fleet.create(tmp_path_factory.mktemp("fleet"))
    try:
        yield fleet
    finally:
        netns.destroy_fleet(fleet)


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def ssh_target(fleet: netns.NetnsFleet, name: str, **settings: Any) -> SshTarget:
    """How to log in to namespace host `name` (root, the session's key and known_hosts)."""
    fields: dict[str, Any] = {
        "address": fleet.hosts[name].address,
        "user": "root",
        "key": fleet.client_key,
        "known_hosts": fleet.known_hosts,
        "connect_timeout": 2.0,
    }
    return SshTarget(name, **(fields | settings))


def ssh_host(fleet: netns.NetnsFleet, name: str, tmp: Path, control: str = "cm") -> SshHost:
    """`SshHost` for namespace host `name`, its runs under `tmp/runs`."""
    client = SshClient(ssh_target(fleet, name), tmp / control)
    return SshHost(client, run_dir=str(tmp / "runs"))
