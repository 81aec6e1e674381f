"""Rendering deployments: the GB10 command equals the seed's `docker run`, token by token."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from corral.config import DockerOptions, load_config
from corral.errors import RecipeError
from corral.hardware.info import HardwareInfo
from corral.recipes.loader import load_recipes
from corral.recipes.prepare import prepare
from corral.recipes.render import ModelLocation, render
from corral.runtime.docker import docker_run_argv
from tests.unit.test_hardware import CPU

REPO = Path(__file__).resolve().parents[2]
PEGASUS = REPO / "examples" / "fleet-pegasus.yaml"


def shell_words(text: str) -> list[str]:
    """Words of a shell command as bash reads them (backslash-newline continues the line;
    shlex alone would keep the newline as a word)."""
    return shlex.split(text.replace("\\\n", " "))


def seed_docker_run(seed: Path) -> list[str]:
    """The `docker run` of the seed's Run Command section, as argv."""
    blocks = re.findall(r"```bash\n(.*?)```", seed.read_text(), re.DOTALL)
    return shell_words(next(b for b in blocks if "docker run" in b))


def cpu_box() -> HardwareInfo:
    return HardwareInfo(kind="cpu", cpu=CPU, ram_bytes=2**34)


@pytest.fixture
def seed_argv(shared_fixtures: Path) -> list[str]:
    return seed_docker_run(shared_fixtures.parent / "seed" / "000_af45524de24d514f.txt")


def test_gb10_render_equals_the_seed_token_by_token(seed_argv: list[str], tmp_path: Path) -> None:
    config = load_config(PEGASUS)
    prepared = prepare(config, "gpt-oss-120b", tmp_path, cpu_box, runtime="docker")
    ours = docker_run_argv(prepared.launch, prepared.deployment.docker)
    assert prepared.hardware_kind == "gb10"  # from hosts.pegasus, not from this CPU box
    assert len(ours) == len(seed_argv)
    for position, (mine, theirs) in enumerate(zip(ours, seed_argv, strict=True)):
        assert mine == theirs, f"token {position}: {mine!r} != seed's {theirs!r}"
    assert prepared.launch.served_name == seed_argv[seed_argv.index("serve") + 1]


def test_corral_render_cli_prints_the_seed_command(seed_argv: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "corral", "render", "gpt-oss-120b", "--config", str(PEGASUS),
         "--docker"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shell_words(done.stdout) == seed_argv
    assert "marlin-hang-sm12x" in done.stderr  # known issues shown when the recipe is chosen


def test_default_deployment_renders_a_local_process(default_model_path: Path) -> None:
    config = load_config(None)
    home = default_model_path.parents[3]
    prepared = prepare(config, "smollm2-135m-instruct", home, cpu_box)
    launch = prepared.launch
    assert launch.runtime == "process"
    assert prepared.choice.recipe.name == "smollm2-135m-cpu"
    assert launch.argv[1:3] == ("-m", "vllm.entrypoints.openai.api_server")
    assert launch.argv[launch.argv.index("--model") + 1] == str(default_model_path)
    assert launch.served_name == "smollm2-135m-instruct"
    assert dict(launch.env)["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert (launch.host, launch.port) == ("127.0.0.1", 8100)


def test_bridged_network_restart_policy_and_env(tmp_path: Path) -> None:
    recipe = load_recipes()["gpt-oss-120b-h100"]
    config = load_config(PEGASUS)
    dep = config.deployment("gpt-oss-120b").model_copy(
        update={
            "recipe": recipe.name,
            "env": {"VLLM_LOGGING_LEVEL": "DEBUG"},
            "docker": DockerOptions(network="bridge", restart="unless-stopped"),
            "bind": None,
        }
    )
    location = ModelLocation(tmp_path / "root" / "m", tmp_path / "root")
    argv = docker_run_argv(render(dep, recipe, location, runtime="docker"), dep.docker)
    joined = " ".join(argv)
    assert "--network bridge -p 127.0.0.1:8000:8000 --restart unless-stopped" in joined
    assert f"-v {tmp_path / 'root'}:/models:ro -e VLLM_LOGGING_LEVEL=DEBUG" in joined
    assert "--served-model-name gpt-oss-120b" in joined
    assert argv[argv.index("vllm/vllm-openai:latest") + 1] == "/models/m"


def test_process_recipe_cannot_render_for_docker(tmp_path: Path) -> None:
    config = load_config(None)
    recipe = load_recipes()["smollm2-135m-cpu"]
    with pytest.raises(RecipeError, match="no container section"):
        render(config.deployments[0], recipe, ModelLocation(tmp_path, None), runtime="docker")


def test_render_refuses_a_mismatched_recipe_without_force(tmp_path: Path) -> None:
    config = load_config(PEGASUS, overrides={"hosts": {"pegasus": {"hardware": "h100"}}})
    with pytest.raises(RecipeError, match="does not fit"):
        prepare(config, "gpt-oss-120b", tmp_path, cpu_box)
    forced = prepare(config, "gpt-oss-120b", tmp_path, cpu_box, force=True)
    assert forced.choice.forced
