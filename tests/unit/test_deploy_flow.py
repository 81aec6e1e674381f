"""`corral deploy` / `stop` / report end to end against the scripted engine (a real process
on loopback), and the docker path against the stand-in `docker` replaying a GB10 vLLM log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from corral.config import CorralConfig, load_config
from corral.deploy.flow import DeployOptions, Services, deploy, log_lines, stop
from corral.errors import EngineError
from corral.ledger import runs
from corral.ledger.db import Ledger, open_ledger
from corral.ledger.launches import launch_of, runs_of
from corral.report.logbook import collect
from corral.report.markdown import render
from corral.runtime.detached import alive
from tests.support.docker import install_fake_docker
from tests.support.fleet import fleet_config, scripted
from tests.support.scripted import scripted_engine
from tests.support.vllm import free_port
from tests.unit.test_render import PEGASUS, cpu_box


def make_config(tmp_path: Path, extra_args: list[str] | None = None) -> CorralConfig:
    return fleet_config(tmp_path, [scripted("fake", tmp_path, args=extra_args or [])])


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


def services_for(ledger: Ledger, home: Path, docker: str = "docker") -> Services:
    said: list[str] = []
    return Services(ledger, home, cpu_box, docker=docker,
                    say=lambda kind, text: said.append(f"{kind} {text}"))  # fmt: skip


QUICK = DeployOptions(checks=["models", "chat"])


def test_deploy_verify_report_stop(tmp_path: Path, ledger: Ledger) -> None:
    config = make_config(tmp_path)
    services = services_for(ledger, tmp_path)
    result = deploy(config, "fake", services, QUICK)
    try:
        assert not result.adopted
        assert [r.status.value for r in result.verify] == ["pass", "pass"]
        run = runs_of(ledger, "fake")[-1]
        assert run["state"] == "ready"
        launch = launch_of(ledger, result.run_id)
        assert launch is not None
        assert launch.pid is not None
        assert alive(launch.pid, launch.pid_started_at)
        assert "READY port=" in "".join(log_lines("fake", services))
        report = render(collect(ledger, "fake"))
        assert launch.shell_command in report
        assert "| models | pass |" in report
        assert "**fake-issue**" in report
        assert "| 1 | Launch (process or container start)" in report
    finally:
        stop("fake", services)
    assert runs_of(ledger, "fake")[-1]["state"] == "stopped"
    assert not alive(launch.pid, launch.pid_started_at)
    kinds = [e["kind"] for e in runs.events(ledger, "fake")]
    assert kinds == ["start", "ready", "stop"]


def test_second_deploy_adopts_and_a_dead_engine_is_settled(tmp_path: Path, ledger: Ledger) -> None:
    config = make_config(tmp_path)
    services = services_for(ledger, tmp_path)
    first = deploy(config, "fake", services, DeployOptions(verify=False))
    again = deploy(config, "fake", services, DeployOptions(verify=False))
    assert again.adopted
    assert again.run_id == first.run_id
    launch = launch_of(ledger, first.run_id)
    assert launch is not None
    assert launch.pid is not None
    os.killpg(launch.pid, signal.SIGKILL)  # the engine dies behind corral's back
    third = deploy(config, "fake", services, DeployOptions(verify=False))
    try:
        assert third.run_id != first.run_id
        states = [r["state"] for r in runs_of(ledger, "fake")]
        assert states == ["failed", "ready"]
        assert "crash" in [e["kind"] for e in runs.events(ledger, "fake")]
    finally:
        stop("fake", services)


def test_an_engine_that_exits_during_startup_fails_the_run(tmp_path: Path, ledger: Ledger) -> None:
    config = make_config(tmp_path, extra_args=["--no-such-flag"])
    services = services_for(ledger, tmp_path)
    with pytest.raises(EngineError, match="engine for 'fake' exited with code 2"):
        deploy(config, "fake", services, QUICK)
    run = runs_of(ledger, "fake")[-1]
    assert run["state"] == "failed"
    assert run["ended_at"] is not None
    with pytest.raises(EngineError, match="no running engine"):
        stop("fake", services)


def test_docker_deploy_watches_the_container_log(
    tmp_path: Path, ledger: Ledger, shared_fixtures: Path
) -> None:
    """GB10 deployment via the stand-in docker; the scripted engine answers for the
    container, the recorded GB10 vLLM 0.14 log is what `docker logs -f` says."""
    log = shared_fixtures / "logs" / "vllm" / "gpt-oss-120b-gb10-vllm-0.14.0rc1.log"
    fake = install_fake_docker(tmp_path / "bin", tmp_path / "state", log)
    config = load_config(PEGASUS)
    served = config.deployments[0].model.replace("openai/gpt-oss-120b@", "")
    served = f"/models/models--openai--gpt-oss-120b/snapshots/{served}"
    with scripted_engine("--tokens", "4", model=served) as engine:
        dep = config.deployments[0].model_copy(update={"port": engine.port, "bind": "127.0.0.1"})
        config = config.model_copy(update={"deployments": [dep], "home": tmp_path})
        services = services_for(ledger, tmp_path, str(fake.executable))
        result = deploy(config, "gpt-oss-120b", services, DeployOptions(verify=False))
        facts = runs.facts(ledger, result.run_id)
        assert facts["kv_cache_tokens"] == "545824 tokens"
        assert facts["engine_version"] == "0.14.0rc1.dev375+g8409484b4"
        report = render(collect(ledger, "gpt-oss-120b"))
        assert "| KV cache capacity | 545,824 tokens |" in report
        assert "--name gpt-oss-120b" in report
        assert "**marlin-hang-sm12x**" in report
        stop("gpt-oss-120b", services)
    assert fake.calls()[0][0] == "run"
    assert (
        "Application startup complete."
        in Path(str(runs_of(ledger, "gpt-oss-120b")[-1]["log_path"])).read_text()
    )
    assert ["rm", "-f", "gpt-oss-120b"] in fake.calls()


def test_deploy_killed_with_sigkill_leaves_a_consistent_ledger(
    tmp_path: Path, ledger: Ledger
) -> None:
    """corral dies mid-startup; the detached engine lives on and the next deploy adopts it."""
    config = make_config(tmp_path, extra_args=["--slow-start", "3"])
    config_file = tmp_path / "corral.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral", "deploy", "fake", "--config", str(config_file),
         "--no-verify"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (ledger.conn.execute("SELECT 1 FROM run_launches").fetchone()):
            assert time.monotonic() < deadline, "deploy recorded no launch"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert ledger.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert runs_of(ledger, "fake")[-1]["state"] == "starting"
    services = services_for(ledger, tmp_path)
    result = deploy(config, "fake", services, DeployOptions(verify=False))
    try:
        assert result.adopted
        assert runs_of(ledger, "fake")[-1]["state"] == "ready"
    finally:
        stop("fake", services)


def test_a_hang_names_the_recipes_known_issue(
    tmp_path: Path, ledger: Ledger, shared_fixtures: Path
) -> None:
    """A GB10 start that stops at "Using Marlin backend" (a synthetic tail on a real log
    head) and never answers: the known issue is recognised live, the start fails at once
    with its remedy, and the container is removed."""
    real = (shared_fixtures / "logs" / "vllm" / "gpt-oss-120b-gb10-vllm-0.14.0rc1.log").read_text()
    hang = tmp_path / "hang.log"
    marlin = "(EngineCore_DP0 pid=1) INFO 02-09 07:27:31 [mxfp4.py:1] Using Marlin backend\n"
    hang.write_text("".join(real.splitlines(keepends=True)[:20]) + marlin)
    fake = install_fake_docker(tmp_path / "bin", tmp_path / "state", hang)
    config = load_config(PEGASUS)
    dep = config.deployments[0].model_copy(update={"port": free_port(), "bind": "127.0.0.1"})
    config = config.model_copy(update={"deployments": [dep], "home": tmp_path})
    services = services_for(ledger, tmp_path, str(fake.executable))
    began = time.monotonic()
    with pytest.raises(EngineError, match="known issue marlin-hang-sm12x") as err:
        deploy(config, "gpt-oss-120b", services, DeployOptions(verify=False, timeout=120))
    assert time.monotonic() - began < 60  # seen in the log as it came, not at the timeout
    assert "vllm-gb10" in str(err.value)  # the recipe's remedy
    assert "Using Marlin backend" in err.value.log_tail[-1]
    assert runs_of(ledger, "gpt-oss-120b")[-1]["state"] == "failed"
    assert ["rm", "-f", "gpt-oss-120b"] in fake.calls()


def test_a_taken_port_is_refused_before_any_engine_starts(tmp_path: Path, ledger: Ledger) -> None:
    """Another server on the port would answer the readiness probe in the new engine's place."""
    import socket

    from corral.errors import PortInUseError

    config = make_config(tmp_path)
    port = config.deployments[0].port
    assert port is not None
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(PortInUseError, match=f"port {port}"):
            deploy(config, "fake", services_for(ledger, tmp_path), QUICK)
    assert runs_of(ledger, "fake") == []  # nothing was launched or recorded as running
