"""Pure parts of the hosts layer: ssh's failure text, the probe's sections, GPU counts, config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from corral.config import validate_config
from corral.errors import ConfigError, HostAuthError, HostKeyError, HostUnreachableError
from corral.hosts.check import (
    HostNeeds,
    StoreNeed,
    gpus_in_args,
    hardware_from,
    parse_sections,
    probe_script,
)
from corral.hosts.ssh import SshTarget, classify, control_dir

TARGET = SshTarget("pegasus", "10.77.0.11", user="root", known_hosts=Path("/k/known_hosts"))

# What OpenSSH 9.2 printed for each case (LogLevel=ERROR, BatchMode=yes), captured here.
CHANGED = """@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:h05l8HjJZ3R74LxD5xK5/KeHg/p1nNL733jR+1ij/nU.
Please contact your system administrator.
Add correct host key in /tmp/crl-try/kh-chg to get rid of this message.
Offending ED25519 key in /tmp/crl-try/kh-chg:1
  remove with:
  ssh-keygen -f "/tmp/crl-try/kh-chg" -R "10.77.0.11"
Host key for 10.77.0.11 has changed and you have requested strict checking.
Host key verification failed.
"""
UNKNOWN = (
    "No ED25519 host key is known for 10.77.0.11 and you have requested strict checking.\n"
    "Host key verification failed.\n"
)
DENIED = "root@10.77.0.11: Permission denied (publickey).\n"
REFUSED = "ssh: connect to host 10.77.0.11 port 2222: Connection refused\n"


@pytest.mark.parametrize(
    ("stderr", "kind", "words"),
    [
        (CHANGED, HostKeyError, "now SHA256:h05l8HjJZ3R74LxD5xK5/KeHg/p1nNL733jR+1ij/nU"),
        (UNKNOWN, HostKeyError, "unknown host key"),
        (DENIED, HostAuthError, "refused the key"),
        (REFUSED, HostUnreachableError, "Connection refused"),
        ("", HostUnreachableError, "ssh failed without a message"),
    ],
)
def test_ssh_failures_become_named_errors(stderr: str, kind: type, words: str) -> None:
    error = classify(TARGET, stderr)
    assert type(error) is kind
    assert str(error).startswith("host pegasus: ")
    assert words in error.message
    assert error.hint


def test_control_dir_falls_back_when_the_socket_path_would_be_too_long(tmp_path: Path) -> None:
    assert control_dir(Path("/h")) == Path("/h/ssh")
    assert control_dir(tmp_path / ("x" * 90)).name.startswith("corral-ssh-")


@pytest.mark.parametrize(
    ("args", "gpus"),
    [
        ([], 1),
        (["--tensor-parallel-size", "2"], 2),
        (["-tp=4", "--pipeline-parallel-size", "2"], 8),
        (["--data-parallel-size=2", "-tp", "2"], 4),
    ],
)
def test_gpus_in_args(args: list[str], gpus: int) -> None:
    assert gpus_in_args(args) == gpus


def test_probe_sections_parse_through_the_hardware_parsers(
    tmp_path: Path, shared_fixtures: Path
) -> None:
    """The probe script run by a local shell, with a stand-in nvidia-smi (a real capture)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat {shared_fixtures / 'hardware/h100/nvidia-smi-q.xml'}\n")
    smi.chmod(0o755)
    needs = HostNeeds(
        executables={"sh": ["x"]},
        store=[StoreNeed("nfs", tmp_path), StoreNeed("gone", tmp_path / "no")],
    )
    out = subprocess.run(
        ["sh", "-c", probe_script(needs)],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        check=True,
    ).stdout
    sections = parse_sections(out)
    assert sections["exe:sh"][0] == 0
    assert sections["root:nfs"][0] == 0
    assert sections["root:gone"][0] != 0
    hardware = hardware_from(sections)
    assert hardware.kind == "h100"
    assert hardware.ram_bytes > 0
    assert hardware.cpu.logical_cores >= 1


def test_a_deployment_on_an_undefined_host_names_it() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(
            {"deployments": [{"name": "a", "model": "m", "host": "pegasuss"}]}, "f.yaml"
        )
    assert "'pegasuss', which `hosts:` does not define" in str(caught.value)


def test_a_mount_for_an_unknown_root_names_it() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"hosts": {"p": {"address": "p", "mounts": {"nas": "/mnt"}}}}, "f.yaml")
    assert "hosts.p.mounts names store roots ['nas']" in str(caught.value)


def test_sshhost_parsers() -> None:
    from corral.hosts.sshhost import create_time, env_lines, group_of, listening_ports

    assert create_time("S 152219 1764625000 100") == ("S", 1764625000 + 1522.19)
    assert create_time("") is None
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n"  # 127.0.0.1:8080 LISTEN
        "   1: 0100007F:A3C2 0100007F:1F90 01 00000000:00000000\n"  # an established one
    )
    assert listening_ports(tcp) == {8080}
    ps = "  10  10 Ss\n  11  10 Sl\n  12  10 Z\n  13  99 S\n"
    assert group_of(ps, 10) == [10, 11]
    assert env_lines({"A": "x y", "B": "it's"}) == "A='x y'\nB='it'\"'\"'s'\n"


def test_a_cpu_recipe_needs_no_gpu_and_its_own_executable() -> None:
    import sys

    from corral.hosts.check import needs_of

    data = {
        "hosts": {"stella": {"address": "s"}},
        "deployments": [
            {"name": "small", "model": "m", "recipe": "smollm2-135m-cpu", "host": "stella"},
            {
                "name": "big",
                "model": "m",
                "recipe": "gpt-oss-120b-gb10",
                "host": "stella",
                "runtime": "docker",
            },
        ],
    }
    needs = needs_of(validate_config(data, "f.yaml"), "stella")
    assert needs.gpus == {"small": 0, "big": 1}
    assert needs.executables == {sys.executable: ["small"]}
    assert needs.docker == ["big"]


def test_a_store_root_that_is_there_but_empty_is_not_mounted(tmp_path: Path) -> None:
    """The share's mount point exists on the host but holds nothing: an error naming the
    host and root, with the mount to make (the probe's sections as a host prints them)."""
    from corral.config import Host
    from corral.hosts.check import HostReport, judge

    mounts = f"/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 {tmp_path} ext4 rw 0 0\n"
    sections = {"mounts": (0, mounts), "root:nfs": (0, f"{tmp_path}\n")}
    report = HostReport("stella", "10.77.0.12")
    judge(report, sections, HostNeeds(store=[StoreNeed("nfs", tmp_path)]), Host(address="s"))
    [error] = report.errors
    assert error.what == "store:nfs"
    assert "is empty: the share is probably not mounted" in error.detail
    assert f"mount {tmp_path}" in str(error.hint)


def test_a_bad_worker_host_blocks_its_group_and_nothing_else() -> None:
    """Multi-node: each node needs its share of the GPUs; a node with too few blocks the
    whole group (naming that host), while another host's deployment goes on."""
    from corral.hosts.check import HostReport, blocked, needs_of

    config = validate_config(
        {
            "hosts": {"pegasus": {"address": "p"}, "stella": {"address": "s"}},
            "deployments": [
                {"name": "tp2", "model": "m", "recipe": "gpt-oss-120b-gb10", "runtime": "docker",
                 "nodes": ["pegasus", "stella"], "tensor_parallel_size": 2},
                {"name": "small", "model": "m", "recipe": "smollm2-135m-cpu", "host": "pegasus"},
            ],
        },
        "f.yaml",
    )  # fmt: skip
    assert needs_of(config, "stella").gpus == {"tp2": 1}
    assert needs_of(config, "pegasus").gpus == {"tp2": 1, "small": 0}
    stella = HostReport("stella", "s")
    stella.add("gpus:tp2", "error", "tp2 needs 1 GPU(s), the host has 0", hint="fewer GPUs")
    stopped = blocked(config, {"pegasus": HostReport("pegasus", "p"), "stella": stella})
    assert list(stopped) == ["tp2"]
    assert str(stopped["tp2"]).startswith("host stella: gpus:tp2: tp2 needs 1 GPU(s)")
