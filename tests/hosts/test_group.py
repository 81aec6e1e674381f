"""A multi-node deployment under `corral serve --config`: every rank started, supervised as one.

vLLM's CPU build cannot form a multi-node group here (no second machine with the
distributed backend it needs), so the ranks are scripted engines (tests/support/
scripted_engine.py takes vLLM's multi-node flags; `--headless` serves no API, as a vLLM
worker node doesn't). The deployment is `nodes: [pegasus, stella]` with
`tensor_parallel_size: 2`: serve renders one command per rank (multinode.ranks), starts
rank 0 on pegasus, then the headless rank 1 on stella, each over SSH, and routes to the
head through pegasus's SSH forward. Killing the worker (the head's /health still answers)
ends and restarts the whole group; `corral stop` ends every rank. The rendered commands
are checked against vLLM's own parser in tests/unit/test_multinode.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from corral.hosts.group import rank_log
from corral.hosts.multinode import Rank
from corral.hosts.sshhost import SshHost
from corral.ledger.db import open_ledger
from corral.ledger.hosts import RunHost, run_hosts
from corral.ledger.launches import live_run
from corral.runtime.ports import free_port
from tests.hosts.conftest import ssh_host
from tests.support import netns
from tests.support.fleet import SCRIPTED_RECIPE, fake_model
from tests.support.seed_fleet import host_entry, models

NAME = "tp2"


def group_config(fleet: netns.NetnsFleet, tmp: Path) -> Path:
    recipes = tmp / "recipes"
    recipes.mkdir()
    (recipes / "scripted-cpu.yaml").write_text(yaml.safe_dump(SCRIPTED_RECIPE))
    data = {
        "version": 1,
        "home": str(tmp / "home"),
        "recipes_dir": str(recipes),
        "hosts": {n: host_entry(fleet, n, hardware="cpu") for n in ("pegasus", "stella")},
        "deployments": [
            {"name": NAME, "model": str(fake_model(tmp)), "recipe": "scripted-cpu",
             "nodes": ["pegasus", "stella"], "tensor_parallel_size": 2,
             "startup_timeout": 60, "restart": {"backoff_initial": 0.5}},
        ],
    }  # fmt: skip
    path = tmp / "corral.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def ranks_now(home: Path) -> list[RunHost]:
    with open_ledger(home / "ledger.sqlite3") as ledger:
        run = live_run(ledger, NAME)
        return run_hosts(ledger, int(run["id"])) if run else []


def worker_log(home: Path, stella: SshHost) -> str:
    """Rank 1's own log, on stella beside the run's (serve's default run folder there)."""
    with open_ledger(home / "ledger.sqlite3") as ledger:
        log = Path(live_run(ledger, NAME)["log_path"])  # type: ignore[index]
    remote = SshHost(stella.client).remote_path(rank_log(log, Rank(1, "stella", "worker", ())))
    return stella.client.run(["cat", remote]).stdout


def until(check: Callable[[], bool], limit: float, what: str, out: Path) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {limit} s:\n{out.read_text()[-4000:]}")
        time.sleep(0.1)


def test_serve_starts_every_rank_and_restarts_the_group_when_a_worker_dies(
    netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    config, port, out = group_config(netns_fleet, tmp_path), free_port(), tmp_path / "serve.out"
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "corral", "serve", "--config", str(config), "--port", str(port)]
    with out.open("w") as sink:
        serve = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    pegasus, stella = (ssh_host(netns_fleet, n, tmp_path, control=f"cm-{n}")
                       for n in ("pegasus", "stella"))  # fmt: skip
    started: list[RunHost] = []
    try:
        until(lambda: models(base).get(NAME, {}).get("routable") is True, 90, "routable", out)
        started = ranks_now(home)
        head, worker = started
        assert (head.host, head.role, worker.host, worker.role) == (
            "pegasus", "head", "stella", "worker",
        )  # fmt: skip
        assert head.address == netns_fleet.hosts["pegasus"].address
        assert head.pid is not None
        assert worker.pid is not None
        assert pegasus.alive(head.pid, None)
        assert stella.alive(worker.pid, None)
        assert "headless rank" in worker_log(home, stella)

        stella.signal_group(worker.pid, signal.SIGKILL)  # the headless rank dies
        until(lambda: ranks_now(home) not in ([], started), 60, "a new group", out)
        until(lambda: models(base).get(NAME, {}).get("routable") is True, 60, "routed", out)
        again = ranks_now(home)
        assert [r.host for r in again] == ["pegasus", "stella"]
        assert again[0].pid != head.pid
        assert again[1].pid != worker.pid
        assert not pegasus.alive(head.pid, None), "the head was stopped with its worker"
        assert all(h.alive(r.pid, None) for h, r in zip((pegasus, stella), again, strict=True))  # type: ignore[arg-type]
        text = out.read_text()
        assert "rank 1 (worker) on stella is gone" in text, text[-3000:]
        serve.send_signal(signal.SIGINT)  # serve with a config leaves engines running ...
        serve.wait(60)
        stop = [sys.executable, "-m", "corral", "stop", NAME, "--config", str(config)]
        stopped = subprocess.run(stop, env=env, capture_output=True, text=True, timeout=120,
                                 check=False)  # fmt: skip
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not pegasus.alive(again[0].pid, None), "corral stop ends the head"  # type: ignore[arg-type]
        assert not stella.alive(again[1].pid, None), "... and the worker"  # type: ignore[arg-type]
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGINT)
            serve.wait(60)
        for rank in [*started, *ranks_now(home)]:  # whatever a failure left behind
            host = pegasus if rank.host == "pegasus" else stella
            if rank.pid is not None and host.alive(rank.pid, None):
                host.signal_group(rank.pid, signal.SIGKILL)
        pegasus.close()
        stella.close()
