"""The default model's GPU recipes: each GPU kind gets its own, the CPU recipe only the CPU,
a model folder of any name is recognised by its config.json, and bad input is refused before
launch (a driver older than the engine's CUDA, memory settings with no room for the KV cache)
or allowed with its cost named (the CPU recipe forced onto a GPU host)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from corral.config import load_config
from corral.deploy.planning import preflight
from corral.errors import KvCacheError, RecipeError
from corral.hardware.info import GpuInfo, HardwareInfo
from corral.recipes.loader import load_recipes
from corral.recipes.match import matching
from corral.recipes.prepare import forced_warning, prepare
from tests.unit.planner.test_models_and_cli import SMOLLM2
from tests.unit.test_hardware import CPU

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def gpu_host(kind: str = "h200", cuda: str = "13.0", driver: str = "580.159.04") -> HardwareInfo:
    gpu = GpuInfo(index=0, name="NVIDIA H200", compute_capability="9.0",
                  memory_bytes=150_754_820_096, memory_source="nvml")  # fmt: skip
    return HardwareInfo(kind=kind, gpus=[gpu], driver_version=driver, cuda_version=cuda,
                        cpu=CPU, ram_bytes=2**37)  # fmt: skip


def model_folder(parent: Path, name: str = "model") -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(SMOLLM2))
    return folder


def config_for(tmp_path: Path, model: str, **deployment: object) -> Path:
    data = {"home": str(tmp_path / "home"),
            "deployments": [{"name": "smol", "model": model, **deployment}]}  # fmt: skip
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("kind", "recipe"),
    [("h100", "smollm2-135m-h100"), ("h200", "smollm2-135m-h200"), ("gb10", "smollm2-135m-gb10"),
     ("rtx-pro-6000", "smollm2-135m-rtx-pro-6000"), ("gpu", "smollm2-135m-cuda"),
     ("cpu", "smollm2-135m-cpu")],
)  # fmt: skip
def test_each_hardware_kind_gets_its_own_recipe(kind: str, recipe: str) -> None:
    fits = matching(load_recipes(), MODEL, kind, "vllm")
    assert fits[0].name == recipe
    if kind != "cpu":
        assert "smollm2-135m-cpu" not in [r.name for r in fits]


def test_gpu_recipes_have_no_cpu_flags_and_set_memory_and_flashinfer() -> None:
    for name, recipe in load_recipes().items():
        if not name.startswith("smollm2-135m-") or "llama-server" in name or name.endswith("cpu"):
            continue
        assert "--enforce-eager" not in recipe.args, name
        assert not [k for k in recipe.env if k.startswith("VLLM_CPU_")], name
        assert recipe.env["VLLM_USE_FLASHINFER_SAMPLER"] == "{flashinfer_sampler}", name
        assert {"--gpu-memory-utilization", "--kv-cache-memory-bytes"} & set(recipe.args), name
        assert recipe.cuda == "13.0", name


def test_render_on_a_gpu_host_shows_no_cpu_settings(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    prepared = prepare(load_config(config_for(tmp_path, str(folder))), "smol", tmp_path,
                       gpu_host)  # fmt: skip
    argv, env = prepared.launch.argv, dict(prepared.launch.env)
    assert prepared.choice.recipe.name == "smollm2-135m-h200"
    assert "--enforce-eager" not in argv
    assert not [k for k in env if k.startswith("VLLM_CPU_")]
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.5"
    has = importlib.util.find_spec("flashinfer") is not None
    assert env["VLLM_USE_FLASHINFER_SAMPLER"] == ("1" if has else "0")


def test_a_folder_of_any_name_finds_its_recipe_by_config(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "model")  # /models/model on the H200
    assert matching(load_recipes(), str(folder), "h200", "vllm")[0].name == "smollm2-135m-h200"
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps(SMOLLM2 | {"hidden_size": 2048}))
    assert matching(load_recipes(), str(other), "h200", "vllm") == []


def test_deployment_utilization_overrides_the_recipe(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    config = load_config(config_for(tmp_path, str(folder), gpu_memory_utilization=0.3))
    argv = prepare(config, "smol", tmp_path, gpu_host).launch.argv
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.3"


def test_a_driver_older_than_the_engines_cuda_is_refused_naming_both(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    config = load_config(config_for(tmp_path, str(folder)))
    with pytest.raises(RecipeError, match=r"CUDA 13\.0.*driver 570\.86\.15 supports CUDA 12\.8"):
        prepare(config, "smol", tmp_path, lambda: gpu_host(cuda="12.8", driver="570.86.15"))


def test_utilization_with_no_room_for_kv_is_refused_before_launch(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    config = load_config(config_for(tmp_path, str(folder), gpu_memory_utilization=0.02))
    with pytest.raises(KvCacheError, match="exceed the budget"):
        preflight(prepare(config, "smol", tmp_path, gpu_host))
    config = load_config(config_for(tmp_path, str(folder), max_model_len=8192,
                                    args=["--kv-cache-memory-bytes", "1048576"]))  # fmt: skip
    with pytest.raises(KvCacheError, match="largest max-model-len that fits"):
        preflight(prepare(config, "smol", tmp_path, gpu_host))


def test_fitting_settings_pass_the_preflight(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    preflight(prepare(load_config(config_for(tmp_path, str(folder))), "smol", tmp_path, gpu_host))


def test_cpu_recipe_forced_onto_a_gpu_host_warns_with_the_cost(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    config = load_config(config_for(tmp_path, str(folder), recipe="smollm2-135m-cpu"))
    with pytest.raises(RecipeError, match="hardware 'h200' is not one of"):
        prepare(config, "smol", tmp_path, gpu_host)
    prepared = prepare(config, "smol", tmp_path, gpu_host, force=True)
    warning = forced_warning(prepared)
    assert prepared.choice.forced
    assert "about 7x slower" in warning
    assert "82-86 tok/s" in warning
