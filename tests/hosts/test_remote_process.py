"""A detached process on a namespace host over SSH: launch, follow, adopt, stop, exits, links."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import sys
import time
import urllib.request
from pathlib import Path

from corral.hosts import remote_process as rp
from corral.hosts.ssh import SshClient, SshTarget
from corral.runtime.ports import free_port
from tests.support import netns

SRC = str(Path(__file__).resolve().parents[2] / "src")


def ssh_to(fleet: netns.NetnsFleet, name: str, tmp: Path) -> SshClient:
    host = fleet.hosts[name]
    target = SshTarget(
        name,
        host.address,
        user="root",
        key=fleet.client_key,
        known_hosts=fleet.known_hosts,
        connect_timeout=2,
    )
    return SshClient(target, tmp / "cm")


async def collect(follower: rp.Follower, until: str | None = None, limit: float = 30) -> list[str]:
    lines: list[str] = []

    async def run() -> None:
        async with contextlib.aclosing(follower.lines()) as stream:
            async for line in stream:
                lines.append(line)
                if until and until in line:
                    return

    await asyncio.wait_for(run(), limit)
    return lines


def test_scripted_engine_launch_follow_adopt_stop(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    ssh = ssh_to(netns_fleet, "stella", tmp_path)
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "corral.testing.scripted_engine",
        "--port",
        str(port),
        "--tokens",
        "3",
    ]
    env = {"PYTHONPATH": SRC, "ENGINE_SECRET": "s3cret-value"}
    run_dir = str(tmp_path / "run1")
    handle = rp.launch(ssh, run_dir, argv, env)
    try:
        follower = rp.Follower(ssh, handle)
        lines = asyncio.run(collect(follower, until="READY"))
        assert any(line.startswith(f"READY port={port}") for line in lines)
        assert stat.S_IMODE(Path(run_dir, "env").stat().st_mode) == 0o600
        ps = ssh.run(["ps", "-eo", "args"]).stdout
        assert "s3cret-value" not in ps  # the secret is in the env file, not on a command line
        # A corral restart: a new client and the stored handle find the same engine.
        again = ssh_to(netns_fleet, "stella", tmp_path / "other")
        assert rp.alive(again, handle)
        engine = rp.engine_pid(again, handle)
        assert engine is not None
        assert engine != handle.pid
        local = free_port()
        again.forward(local, port)
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/health", timeout=5) as answer:
            assert answer.status == 200
        assert rp.stop(again, handle, grace=10)
        assert not rp.alive(again, handle)
        assert rp.exit_code(again, handle) is not None
        assert not rp.stop(again, handle)  # already gone
        again.close()
    finally:
        rp.stop(ssh, handle, grace=2)
        ssh.close()


def test_exit_status_and_last_lines_reach_the_follower(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    ssh = ssh_to(netns_fleet, "stella", tmp_path)
    script = "echo starting; sleep 0.3; echo dying; printf 'no newline'; exit 7"
    handle = rp.launch(ssh, str(tmp_path / "run2"), ["sh", "-c", script], {})
    follower = rp.Follower(ssh, handle)
    lines = asyncio.run(collect(follower))
    assert lines == ["starting\n", "dying\n", "no newline\n"]
    assert follower.end.exit_code == 7
    assert not follower.end.link_lost
    assert follower.end.offset == Path(tmp_path / "run2" / "log").stat().st_size
    ssh.close()


def test_a_dropped_link_resumes_where_it_left_off(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    ssh = ssh_to(netns_fleet, "venus", tmp_path)
    script = "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); sleep 0.05; done"
    handle = rp.launch(ssh, str(tmp_path / "run3"), ["sh", "-c", script], {})
    first = rp.Follower(ssh, handle)
    seen = asyncio.run(collect(first, until="line 5"))
    netns_fleet.partition("venus")
    try:
        started = time.monotonic()
        seen += asyncio.run(collect(first, limit=20))  # the same follower, run again
        lost_after = time.monotonic() - started
    finally:
        netns_fleet.heal("venus")
    assert first.end.link_lost, "following a partitioned host ends as a lost link"
    assert lost_after < 10
    assert rp.alive(ssh, handle), "the process kept running through the partition"
    second = rp.Follower(ssh, handle, offset=first.end.offset)
    seen += asyncio.run(collect(second))
    assert second.end.exit_code == 0
    assert [line.strip() for line in seen if line.strip()] == [f"line {i}" for i in range(200)]
    ssh.close()
