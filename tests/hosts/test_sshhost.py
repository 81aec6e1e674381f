"""`SshHost` on a namespace host: spawn, follow, adopt, group, stop, exit status, lost links."""

from __future__ import annotations

import signal
import stat
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.hosts.conftest import SCRIPTED, SCRIPTED_ENV, ssh_host
from tests.support import netns


def read_until(lines: list[str], source: object, word: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    for line in source:  # type: ignore[attr-defined]
        lines.append(line)
        if word in line or time.monotonic() > deadline:
            return


def test_spawn_follow_adopt_and_stop_an_engine(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    host = ssh_host(netns_fleet, "stella", tmp_path)
    port = host.free_port()
    assert not host.port_in_use("127.0.0.1", port)
    log = tmp_path / "run-1" / "engine.log"
    argv = [*SCRIPTED, "--port", str(port)]
    spawned = host.spawn(argv, {**SCRIPTED_ENV, "ENGINE_SECRET": "s3cret"}, log, outlive=True)
    try:
        lines: list[str] = []
        read_until(lines, host.follow(log, lambda: True), "READY")
        assert lines[-1].startswith(f"READY port={port}")
        assert host.port_in_use("127.0.0.1", port)
        env_file = Path(host.remote_path(log)).parent / "env"  # one filesystem in the tests
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert "s3cret" not in host.run(["ps", "-eo", "args"], timeout=10).stdout
        # After a corral restart: another client, the recorded pid and start time.
        again = ssh_host(netns_fleet, "stella", tmp_path, control="cm-again")
        assert again.alive(spawned.pid, spawned.started_at)
        assert not again.alive(spawned.pid, (spawned.started_at or 0) - 100)  # a reused pid
        members = again.group(spawned.pid)
        assert spawned.pid in members
        assert len(members) == 2  # the wrapper and the engine
        local = again.reach(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/health", timeout=5) as answer:
            assert answer.status == 200
        again.signal_group(spawned.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while again.alive(spawned.pid, spawned.started_at) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not again.alive(spawned.pid, spawned.started_at)
        assert again.group(spawned.pid) == []
        assert again.exit_code(spawned.pid) is not None
        again.close()
    finally:
        host.signal_group(spawned.pid, signal.SIGKILL)
        host.close()


def test_exit_status_and_last_lines_of_a_crash(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    host = ssh_host(netns_fleet, "stella", tmp_path)
    log = tmp_path / "run-2" / "engine.log"
    spawned = host.spawn(
        ["sh", "-c", "echo starting; sleep 0.5; echo dying; exit 7"], {}, log, outlive=True
    )
    lines = list(host.follow(log, lambda: host.alive(spawned.pid, spawned.started_at)))
    assert lines == ["starting\n", "dying\n"]
    assert host.exit_code(spawned.pid) == 7
    host.close()


def test_a_partition_neither_ends_the_engine_nor_loses_a_line(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    host = ssh_host(netns_fleet, "venus", tmp_path)
    log = tmp_path / "run-3" / "engine.log"
    script = "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); sleep 0.05; done"
    spawned = host.spawn(["sh", "-c", script], {}, log, outlive=True)
    alive: Callable[[], bool] = lambda: host.alive(spawned.pid, spawned.started_at)  # noqa: E731
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(host.follow(log, alive)))
    reader.start()
    time.sleep(1.0)
    netns_fleet.partition("venus")
    try:
        deadline = time.monotonic() + 10
        while host.link_up() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not host.link_up(), "the master notices the partition"
        time.sleep(1.0)
    finally:
        netns_fleet.heal("venus")
    deadline = time.monotonic() + 15
    while not host.relink() and time.monotonic() < deadline:
        time.sleep(0.5)
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert [line.strip() for line in lines] == [f"line {i}" for i in range(200)]
    assert host.exit_code(spawned.pid) == 0
    host.close()
