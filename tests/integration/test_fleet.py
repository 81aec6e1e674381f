"""`corral serve --config` over a fleet: the real vLLM CPU engine and the scripted engine as
detached processes, and a docker deployment through the stand-in `docker` (it replays the
real GB10 vLLM 0.14 log; a scripted engine answers on the container's port). Then: SIGKILL
of serve and a new serve routes to the same engines; a fourth deployment `corral deploy`ed
and `corral stop`ped from "another terminal" while serve runs; reports after serve and
after deploy alike.

Starts its own real engine (detached, so it can outlive serve), under `vllm_lock`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from corral.config import default_deployment, load_config
from corral.ledger.db import open_ledger
from corral.ledger.launches import launch_of, live_run
from corral.runtime.detached import alive, stop_group
from tests.support.docker import FakeDocker, install_fake_docker, path_with
from tests.support.fleet import SCRIPTED_RECIPE, fake_model
from tests.support.scripted import RunningEngine, start_scripted
from tests.support.vllm import SERVED_NAME, free_port
from tests.unit.test_render import PEGASUS

pytestmark = pytest.mark.integration
CORRAL = [sys.executable, "-m", "corral"]
GB10_LOG = "gpt-oss-120b-gb10-vllm-0.14.0rc1.log"
FLEET = (SERVED_NAME, "scripted", "gpt-oss-120b")


@dataclass
class Fleet:
    tmp: Path
    config: Path
    port: int
    env: dict[str, str]
    docker: FakeDocker
    container_engine: RunningEngine
    serve: subprocess.Popen[str] | None = None

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    def start_serve(self, name: str) -> subprocess.Popen[str]:
        out = (self.tmp / f"{name}.out").open("w")
        self.serve = subprocess.Popen(
            [*CORRAL, "serve", "--config", str(self.config)], stdout=out,
            stderr=subprocess.STDOUT, text=True, env=self.env, start_new_session=True,
        )  # fmt: skip
        out.close()
        return self.serve

    def corral(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CORRAL, *args, "--config", str(self.config)], capture_output=True, text=True,
            timeout=timeout, check=False, env=self.env,
        )  # fmt: skip

    def models(self) -> dict[str, dict[str, Any]]:
        try:
            reply = httpx.get(f"http://127.0.0.1:{self.port}/v1/models", timeout=2)
        except httpx.HTTPError:
            return {}
        return {m["id"]: m["corral"] for m in reply.json()["data"]}

    def routable(self, *names: str) -> bool:
        models = self.models()
        return all(models.get(n, {}).get("routable") for n in names)

    def launches(self) -> dict[str, tuple[int | None, str | None]]:
        """(pid, container id) of each deployment's live run."""
        found = {}
        with open_ledger(self.home / "ledger.sqlite3") as ledger:
            for name in FLEET:
                run = live_run(ledger, name)
                launch = launch_of(ledger, int(run["id"])) if run else None
                found[name] = (launch.pid, launch.container_id) if launch else (None, None)
        return found


def wait(check: Any, timeout: float, what: str) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - began


def write_config(tmp: Path, model_path: Path, port: int, container_port: int) -> Path:
    real = default_deployment().model_dump(mode="json", exclude_defaults=True)
    real["port"] = free_port()
    seed = load_config(PEGASUS)
    pegasus = seed.deployments[0].model_dump(mode="json", exclude_none=True)
    # This machine stands in for Pegasus: the host is named `localhost` (this machine, no
    # SSH) and carries Pegasus's hardware, so the GB10 recipe renders the seed's docker run.
    pegasus |= {"port": container_port, "bind": "127.0.0.1", "host": "localhost"}
    recipes = tmp / "recipes"
    recipes.mkdir()
    (recipes / "scripted.yaml").write_text(yaml.safe_dump(SCRIPTED_RECIPE))
    model = str(fake_model(tmp))
    scripted = {"name": "scripted", "model": model, "recipe": "scripted-cpu", "port": free_port()}
    data = {
        "home": str(tmp / "home"),
        "recipes_dir": str(recipes),
        "gateway": {"port": port},
        "hosts": {"localhost": {"hardware": seed.hosts["pegasus"].hardware}},  # gb10
        "store": {"roots": [{"name": "test", "path": str(model_path.parents[2])}]},
        "deployments": [real, scripted, pegasus],
    }
    path = tmp / "corral.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def add_fourth(fleet: Fleet) -> None:
    """Edit the config while serve runs, as an operator would."""
    data = yaml.safe_load(fleet.config.read_text())
    model = str(fake_model(fleet.tmp))
    data["deployments"].append(
        {"name": "fourth", "model": model, "recipe": "scripted-cpu", "port": free_port()}
    )
    fleet.config.write_text(yaml.safe_dump(data))


def _end_everything(fleet: Fleet) -> None:
    if fleet.serve is not None and fleet.serve.poll() is None:
        fleet.serve.send_signal(signal.SIGKILL)
        fleet.serve.wait()
    with open_ledger(fleet.home / "ledger.sqlite3") as ledger:
        for name in (*FLEET, "fourth"):
            run = live_run(ledger, name)
            launch = launch_of(ledger, int(run["id"])) if run else None
            if launch and launch.pid and alive(launch.pid, launch.pid_started_at):
                stop_group(launch.pid, launch.pid_started_at)
    fleet.container_engine.stop()


@pytest.fixture(scope="module")
def fleet(
    vllm_lock: None, default_model_path: Path, tmp_path_factory: pytest.TempPathFactory,
    shared_fixtures: Path,
) -> Iterator[Fleet]:  # fmt: skip
    tmp = tmp_path_factory.mktemp("fleet")
    docker = install_fake_docker(tmp / "bin", tmp / "docker-state",
                                 shared_fixtures / "logs" / "vllm" / GB10_LOG)  # fmt: skip
    served = "/models/models--openai--gpt-oss-120b/snapshots/"
    served += load_config(PEGASUS).deployments[0].model.split("@")[1]
    engine = start_scripted("--tokens", "4", model=served)
    port = free_port()
    env = {**os.environ, "PATH": path_with(docker.executable.parent), "PYTHONUNBUFFERED": "1"}
    config = write_config(tmp, default_model_path, port, engine.port)
    running = Fleet(tmp, config, port, env, docker, engine)
    running.start_serve("serve-1")
    try:
        try:
            wait(lambda: running.routable(*FLEET), 400, "the fleet to route")
        except AssertionError:
            out = (tmp / "serve-1.out").read_text()
            pytest.fail(f"not routing: {running.models()}\n{out[-4000:]}")
        yield running
    finally:
        _end_everything(running)


def test_serve_routes_to_all_three(fleet: Fleet) -> None:
    models = fleet.models()
    assert all(models[n]["routable"] for n in FLEET)
    for name in FLEET:
        body = {"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        reply = httpx.post(f"http://127.0.0.1:{fleet.port}/v1/chat/completions", json=body,
                           timeout=60)  # fmt: skip
        assert reply.status_code == 200, (name, reply.text)
    calls = fleet.docker.calls()
    assert calls[0][:4] == ["run", "-d", "--name", "gpt-oss-120b"]


def test_sigkill_of_serve_and_a_new_serve_routes_to_the_same_engines(fleet: Fleet) -> None:
    before = fleet.launches()
    assert all(pid or cid for pid, cid in before.values())
    assert fleet.serve is not None
    fleet.serve.send_signal(signal.SIGKILL)
    fleet.serve.wait()
    began = time.monotonic()
    fleet.start_serve("serve-2")
    seconds = wait(lambda: fleet.routable(*FLEET), 60, "the new serve to route")
    print(f"serve start → routing {len(FLEET)} adopted engines: {time.monotonic() - began:.1f} s")
    assert seconds < 60
    assert fleet.launches() == before  # same pids, same container
    out = (fleet.tmp / "serve-2.out").read_text()
    assert out.count("is already running; adopting it") == len(FLEET)
    assert [c[0] for c in fleet.docker.calls()].count("run") == 1  # no second container


def test_deploy_and_stop_of_a_fourth_change_routing_while_serve_runs(fleet: Fleet) -> None:
    add_fourth(fleet)
    done = fleet.corral("deploy", "fourth", "--no-verify")
    assert done.returncode == 0, done.stderr
    seen = wait(lambda: fleet.routable("fourth"), 10, "the fourth to route")
    print(f"corral deploy returned → fourth routable after {seen:.2f} s")
    assert fleet.routable(*FLEET)  # nothing else restarted or dropped
    stopped = fleet.corral("stop", "fourth")
    assert stopped.returncode == 0, stopped.stderr
    gone = wait(lambda: not fleet.routable("fourth"), 10, "the fourth to leave routing")
    print(f"corral stop returned → fourth unroutable after {gone:.2f} s")
    assert fleet.models()["fourth"]["reason"] == "stopped by corral stop"
    assert fleet.routable(*FLEET)


def test_reports_after_serve_and_after_deploy_have_the_same_sections(fleet: Fleet) -> None:
    by_serve = fleet.corral("report", "scripted").stdout
    reported = fleet.corral("report", "fourth")
    by_deploy = reported.stdout
    assert reported.returncode == 0, reported.stderr
    # the sections, not the history's dated entries (one per run, which differ by design)
    heads = [
        [line for line in text.splitlines() if line.startswith("#") and " UTC: run " not in line]
        for text in (by_serve, by_deploy)
    ]
    assert heads[0][1:] == heads[1][1:]  # the title names the deployment
    for text in (by_serve, by_deploy):
        assert "with recipe scripted-cpu" in text or "scripted-cpu" in _section(text, "Overview")
        assert "**Total**: " in text
        assert "**Total**: ? " not in text  # a startup total, from the run's startup_s fact
    assert _section(by_serve, "Hardware") == _section(by_deploy, "Hardware")
    assert "?" not in _section(by_serve, "Hardware")


def _section(text: str, name: str) -> str:
    part = text.split(f"## {name}", 1)[1]
    return part.split("\n## ", 1)[0]


def test_status_and_the_ledger_after_serve(fleet: Fleet) -> None:
    status = fleet.corral("status", "--json")
    rows = {r["deployment"]: r for r in json.loads(status.stdout)}
    real = rows[SERVED_NAME]
    assert real["state"] == "ready"
    assert "kv_cache_tokens" in real["facts"]
    assert "startup_s" in real["facts"]
    assert rows["gpt-oss-120b"]["facts"]["kv_cache_tokens"] == "545824 tokens"
