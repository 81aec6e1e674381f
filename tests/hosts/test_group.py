"""A multi-node group on namespace hosts: kill one rank and the whole group restarts.

vLLM's CPU build cannot form a multi-node group here (no second machine with the
distributed backend it needs), so the ranks are scripted engines: the head (rank 0) on
pegasus answers the API, the "headless" rank 1 on stella only has to live. What is tested
is corral's part: start in order, watch every rank on its own host, and end and restart
all ranks when any one dies. The rendered vLLM commands are checked against vLLM's own
parser in tests/unit/test_multinode.py.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path

from corral.hosts.group import Member, RankGroup
from corral.hosts.multinode import Rank
from tests.hosts.conftest import SCRIPTED, SCRIPTED_ENV, ssh_host
from tests.support import netns


def scripted(port: int) -> tuple[str, ...]:
    return (*SCRIPTED, "--port", str(port))


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_killing_a_worker_rank_restarts_the_whole_group(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    pegasus, stella = (
        ssh_host(netns_fleet, "pegasus", tmp_path),
        ssh_host(netns_fleet, "stella", tmp_path),
    )
    head_port, worker_port = pegasus.free_port(), stella.free_port()
    env = SCRIPTED_ENV
    members = [
        Member(Rank(0, "pegasus", "head", scripted(head_port), env), pegasus),
        Member(Rank(1, "stella", "worker", scripted(worker_port), env), stella),
    ]
    local = pegasus.reach(head_port)
    group = RankGroup(
        members,
        tmp_path / "logs",
        lambda: healthy(f"http://127.0.0.1:{local}/health"),
        grace=5,
        backoff=0.1,
    )
    try:
        group.start(timeout=60)
        assert group.dead() == []
        head_before, worker_before = members[0].pid, members[1].pid
        assert head_before is not None
        assert worker_before is not None
        stella.signal_group(worker_before, signal.SIGKILL)  # the headless rank dies
        time.sleep(0.5)
        assert healthy(f"http://127.0.0.1:{local}/health"), "the head alone still looks fine"
        assert group.watch_once(timeout=60)
        assert group.restarts == 1
        assert members[0].pid not in (None, head_before), "the head was restarted too"
        assert members[1].pid not in (None, worker_before)
        assert not pegasus.alive(head_before, None)
        assert group.dead() == []
        assert healthy(f"http://127.0.0.1:{local}/health")
        assert any("rank 1 on stella is gone" in e for e in group.events)
        assert not group.watch_once()
    finally:
        group.stop()
        pegasus.close()
        stella.close()
    assert all(m.pid is None for m in members)
