"""The docker runtime against a stand-in `docker` that records argv and replays real logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.config import load_config
from corral.engines.base import Fact, Phase
from corral.engines.vllm import VllmLogParser
from corral.errors import EngineError
from corral.recipes.prepare import prepare
from corral.runtime.docker import DockerCli, docker_run_argv, follow_startup, watch_lines
from tests.support.docker import FakeDocker, install_fake_docker
from tests.unit.test_render import PEGASUS, cpu_box

GB10_LOG = "gpt-oss-120b-gb10-vllm-0.14.0rc1.log"


@pytest.fixture
def fake_docker(tmp_path: Path, shared_fixtures: Path) -> FakeDocker:
    log = shared_fixtures / "logs" / "vllm" / GB10_LOG
    return install_fake_docker(tmp_path / "bin", tmp_path / "docker-state", log)


def gb10_run_argv(tmp_path: Path) -> list[str]:
    prepared = prepare(load_config(PEGASUS), "gpt-oss-120b", tmp_path, cpu_box)
    return docker_run_argv(prepared.launch, prepared.deployment.docker)


def test_run_follow_stop_remove(fake_docker: FakeDocker, tmp_path: Path) -> None:
    cli = DockerCli(str(fake_docker.executable))
    argv = gb10_run_argv(tmp_path)
    container_id = cli.run(argv)
    state = cli.state("gpt-oss-120b")
    assert state is not None
    assert state.running
    assert state.id == container_id
    seen: list[str] = []
    startup = follow_startup(
        cli, "gpt-oss-120b", VllmLogParser(year=2026), lambda e: seen.append(type(e).__name__)
    )
    assert startup.ready
    facts = {e.name: e.value for e in startup.events if isinstance(e, Fact)}
    assert facts["kv_cache_tokens"] == 545_824
    assert facts["max_concurrency"] == 7.83
    phases = [e.name for e in startup.events if isinstance(e, Phase)]
    assert phases[0] == "config"
    assert phases[-1] == "ready"
    assert "Fact" in seen
    cli.stop("gpt-oss-120b")
    stopped = cli.state("gpt-oss-120b")
    assert stopped is not None
    assert not stopped.running
    cli.remove("gpt-oss-120b")
    assert cli.state("gpt-oss-120b") is None
    calls = fake_docker.calls()
    assert calls[0] == argv[1:]  # the exact rendered command reached docker
    assert [c[0] for c in calls] == ["run", "inspect", "logs", "stop", "inspect", "rm", "inspect"]
    assert calls[2] == ["logs", "-f", "gpt-oss-120b"]


def test_a_second_run_with_the_same_name_fails_with_a_hint(
    fake_docker: FakeDocker, tmp_path: Path
) -> None:
    cli = DockerCli(str(fake_docker.executable))
    cli.run(gb10_run_argv(tmp_path))
    with pytest.raises(EngineError, match="already in use") as err:
        cli.run(gb10_run_argv(tmp_path))
    assert "corral stop" in str(err.value)


def test_missing_docker_cli_is_an_engine_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"docker CLI .* was not found"):
        DockerCli(str(tmp_path / "no-docker")).state("x")


def test_watch_lines_stops_at_ready_and_keeps_a_tail(shared_fixtures: Path) -> None:
    text = (shared_fixtures / "logs" / "vllm" / GB10_LOG).read_text()
    lines = [*text.splitlines(keepends=True), "after ready\n"]
    startup = watch_lines(iter(lines), VllmLogParser(year=2026))
    assert startup.ready
    assert "Application startup complete." in startup.tail[-1]
