"""The SSH layer against real sshd in network namespaces: commands, forwards, refusals."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from corral.errors import HostAuthError, HostKeyError, HostUnreachableError
from corral.hosts.ssh import SshClient
from corral.runtime.ports import free_port
from tests.hosts.conftest import ssh_target
from tests.support import netns


def client(fleet: netns.NetnsFleet, name: str, tmp: Path, **target: object) -> SshClient:
    return SshClient(ssh_target(fleet, name, **target), tmp / "cm")


def test_command_runs_inside_the_host(netns_fleet: netns.NetnsFleet, tmp_path: Path) -> None:
    ssh = client(netns_fleet, "stella", tmp_path)
    try:
        result = ssh.run(["sh", "-c", "echo $CORRAL_TEST_HOST; ip -o -4 addr show eth0"])
        assert result.stdout.splitlines()[0] == "stella"
        assert netns_fleet.hosts["stella"].address in result.stdout
        assert ssh.alive()
        failed = ssh.run(["sh", "-c", "echo oops >&2; exit 3"], check=False)
        assert (failed.returncode, failed.stderr.strip()) == (3, "oops")
    finally:
        ssh.close()
    assert not ssh.alive()


def test_forward_reaches_a_server_on_the_hosts_loopback(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    host = netns_fleet.hosts["stella"]
    remote_port = 18080
    server = subprocess.Popen(
        host.exec_argv(
            [
                sys.executable,
                "-m",
                "http.server",
                str(remote_port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(tmp_path),
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (tmp_path / "hello.txt").write_text("from stella")
    ssh = client(netns_fleet, "stella", tmp_path)
    local = free_port()
    try:
        ssh.forward(local, remote_port)
        body = _get_retrying(f"http://127.0.0.1:{local}/hello.txt")
        assert body == "from stella"
        ssh.cancel_forward(local, remote_port)
        with pytest.raises(OSError, match=r"Connection refused|reset|closed"):
            urllib.request.urlopen(f"http://127.0.0.1:{local}/hello.txt", timeout=2)
    finally:
        ssh.close()
        server.kill()
        server.wait()


def _get_retrying(url: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_unknown_host_key_is_refused(netns_fleet: netns.NetnsFleet, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError) as caught:
        client(netns_fleet, "pegasus", tmp_path, known_hosts=empty).run(["true"])
    assert "host pegasus" in str(caught.value)
    assert "unknown host key" in str(caught.value)
    assert "ssh-keyscan" in str(caught.value.hint)


def test_changed_host_key_is_refused(netns_fleet: netns.NetnsFleet, tmp_path: Path) -> None:
    pegasus, stella = netns_fleet.hosts["pegasus"], netns_fleet.hosts["stella"]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(netns.known_hosts_line(stella).replace(stella.address, pegasus.address))
    with pytest.raises(HostKeyError) as caught:
        client(netns_fleet, "pegasus", tmp_path, known_hosts=wrong).run(["true"])
    assert "differs from the one in" in str(caught.value)
    assert "ssh-keygen -R" in str(caught.value.hint)


def test_refused_key_names_the_host(netns_fleet: netns.NetnsFleet, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    with pytest.raises(HostAuthError) as caught:
        client(netns_fleet, "pegasus", tmp_path, key=other).run(["true"])
    assert "host pegasus" in str(caught.value)
    assert "refused the key" in str(caught.value)


def test_partitioned_host_is_unreachable_then_back(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    ssh = client(netns_fleet, "venus", tmp_path)
    ssh.run(["true"])
    netns_fleet.partition("venus")
    try:
        deadline = time.monotonic() + 10
        while ssh.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not ssh.alive(), "the master should notice a dead link within seconds"
        with pytest.raises(HostUnreachableError) as caught:
            ssh.run(["true"], timeout=10)
        assert "host venus" in str(caught.value)
    finally:
        netns_fleet.heal("venus")
    assert ssh.run(["echo", "back"]).stdout.strip() == "back"
    ssh.close()
