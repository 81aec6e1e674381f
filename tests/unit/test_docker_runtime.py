"""The docker runtime against a stand-in `docker` that records argv and replays real logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.config import load_config
from corral.engines.base import Fact, Phase
from corral.engines.vllm import VllmLogParser
from corral.errors import EngineError, RuntimeMissing
from corral.recipes.prepare import prepare
from corral.runtime import DockerRuntime, LocalHost
from corral.runtime.docker import DockerCli
from tests.support.docker import FakeDocker, install_fake_docker
from tests.unit.test_render import PEGASUS, cpu_box

GB10_LOG = "gpt-oss-120b-gb10-vllm-0.14.0rc1.log"


@pytest.fixture
def fake_docker(tmp_path: Path, shared_fixtures: Path) -> FakeDocker:
    log = shared_fixtures / "logs" / "vllm" / GB10_LOG
    return install_fake_docker(tmp_path / "bin", tmp_path / "docker-state", log)


def gb10(tmp_path: Path, fake: FakeDocker, env: dict[str, str] | None = None) -> tuple[
    DockerRuntime, list[str], dict[str, str]
]:  # fmt: skip
    config = load_config(PEGASUS)
    if env:
        dep = config.deployments[0].model_copy(update={"env": env})
        config = config.model_copy(update={"deployments": [dep]})
    prepared = prepare(config, "gpt-oss-120b", tmp_path, cpu_box)
    runtime = DockerRuntime(LocalHost(), str(fake.executable))
    command = runtime.command(prepared.launch, prepared.deployment.docker)
    return runtime, list(command.argv), dict(command.env)


def test_launch_follow_stop_through_the_runtime(fake_docker: FakeDocker, tmp_path: Path) -> None:
    runtime, argv, _ = gb10(tmp_path, fake_docker)
    command = runtime.command(
        prepare(load_config(PEGASUS), "gpt-oss-120b", tmp_path, cpu_box).launch,
        load_config(PEGASUS).deployments[0].docker,
    )
    running = runtime.launch(command, tmp_path / "run.log")
    assert running.alive()
    assert running.identity.container == "gpt-oss-120b"
    assert running.identity.container_id
    parser = VllmLogParser(year=2026)
    events = [e for line in running.lines(lambda: True) for e in parser.feed(line)]
    # the runtime hands out lines only; the parser (the recorder's) finds the figures
    facts = {e.name: e.value for e in events if isinstance(e, Fact)}
    assert facts["kv_cache_tokens"] == 545_824
    assert [e.name for e in events if isinstance(e, Phase)][-1] == "ready"
    assert "Application startup complete." in (tmp_path / "run.log").read_text()
    again = runtime.adopt(running.identity, tmp_path / "run.log")
    assert again is not None
    assert again.stop()
    assert not running.alive()
    assert runtime.adopt(running.identity, tmp_path / "run.log") is None
    calls = fake_docker.calls()
    assert calls[0] == argv[1:]  # the exact rendered command reached docker
    assert ["stop", "--time", "30", "gpt-oss-120b"] in calls
    assert ["rm", "-f", "gpt-oss-120b"] in calls


def test_env_values_never_reach_the_docker_command_line(
    fake_docker: FakeDocker, tmp_path: Path
) -> None:
    """`ps` shows a command line: the value goes through docker's own environment."""
    _, argv, env = gb10(tmp_path, fake_docker, {"HF_TOKEN": "hf_secret_value"})
    assert argv[argv.index("HF_TOKEN") - 1] == "-e"
    assert env["HF_TOKEN"] == "hf_secret_value"
    DockerCli(LocalHost(), str(fake_docker.executable)).run(argv, env)
    assert "hf_secret_value" not in json.dumps(fake_docker.calls())


def test_a_second_run_with_the_same_name_fails_with_a_hint(
    fake_docker: FakeDocker, tmp_path: Path
) -> None:
    _, argv, env = gb10(tmp_path, fake_docker)
    cli = DockerCli(LocalHost(), str(fake_docker.executable))
    cli.run(argv, env)
    with pytest.raises(EngineError, match="already in use") as err:
        cli.run(argv, env)
    assert "corral stop" in str(err.value)


def test_missing_docker_cli_is_named(tmp_path: Path) -> None:
    missing = DockerRuntime(LocalHost(), str(tmp_path / "no-docker"))
    command = missing.command(
        prepare(load_config(PEGASUS), "gpt-oss-120b", tmp_path, cpu_box).launch,
        load_config(PEGASUS).deployments[0].docker,
    )
    with pytest.raises(RuntimeMissing, match=r"docker CLI .* is not installed on host 'local'"):
        missing.launch(command, tmp_path / "run.log")
