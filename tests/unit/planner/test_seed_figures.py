"""The planner reproduces figures real vLLM engines logged for gpt-oss-120b."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.hardware.profiles import load_profile
from corral.planner.engine_log import logged_capacity
from corral.planner.plan import PlanInputs, make_plan, to_json

GIB = 2**30


def plan_json(hardware: str, **kwargs: object) -> dict[str, object]:
    inputs = PlanInputs("gpt-oss-120b", max_model_len=131072, **kwargs)  # type: ignore[arg-type]
    return to_json(make_plan(inputs, load_profile(hardware)))


def test_seed_gb10_deployment_figures() -> None:
    """The seed: vLLM 0.14 on GB10 logged 37.3 GiB, 543,248 tokens, 8.15x, 65.97 GiB."""
    out = plan_json("gb10", kv_cache_memory="37.3")
    low, high = out["kv_cache_tokens_range"]  # type: ignore[misc]
    assert low <= 543_248 <= high
    assert high - low < 200  # 0.01 GiB of rounding is ~145 tokens here, not more
    assert out["max_concurrency"] == 8.15
    assert abs(out["weights_gib"] - 65.97) <= 0.2  # type: ignore[operator]
    assert out["engine"]["version"] == "0.14.0"  # type: ignore[index]
    # GB10's NVML cannot report memory: vLLM falls back to 2,048 batched tokens.
    assert out["settings"]["max_num_batched_tokens"] == 2048  # type: ignore[index]


@pytest.mark.parametrize(
    ("kv_bytes", "tokens", "blocks"),
    [
        # exactly 37.3 GiB
        (40_050_570_035, 543_216, 67_902),
        # the two block counts that print 543,248: 67,906 and 67,907 blocks of 18 x 32 KiB
        (67_906 * 18 * 32_768, 543_248, 67_906),
        (67_907 * 18 * 32_768 + 589_823, 543_248, 67_907),
    ],
)
def test_exact_bytes_give_exact_count(kv_bytes: int, tokens: int, blocks: int) -> None:
    out = plan_json("gb10", kv_cache_memory=f"{kv_bytes}B")
    assert out["kv_cache_tokens"] == tokens
    assert out["kv_cache_tokens_range"] == [tokens, tokens]
    assert out["num_blocks"] == blocks
    assert out["blocks_per_request"] == 8192 + 137


def test_vllm_014_fp8_log_is_explained_by_rounding() -> None:
    """0.14.0rc1 on GB10, fp8 KV, 8192 batched tokens, '18.740000 GiB': 545,824 and 7.83x.

    Exactly 18.74 GiB gives 545,840; the engine printed a value already rounded to 0.01
    GiB (the six zeros are formatting), and 545,824 is 68,228-68,229 blocks, i.e.
    18.7394-18.7399 GiB, which rounds to 18.74.
    """
    common = {"engine_version": "0.14.0rc1", "kv_cache_dtype": "fp8"}
    out = plan_json("gb10", kv_cache_memory="18.740000", max_num_batched_tokens=8192, **common)
    low, high = out["kv_cache_tokens_range"]  # type: ignore[misc]
    assert low <= 545_824 <= high
    assert out["kv_cache_tokens"] == 545_840
    assert out["max_concurrency"] == 7.83
    exact = plan_json("gb10", kv_cache_memory=f"{68_229 * 294_912}B",
                      max_num_batched_tokens=8192, **common)  # fmt: skip
    assert exact["kv_cache_tokens"] == 545_824


def test_vllm_025_reports_concurrency_times_length() -> None:
    """0.25.1 logged 460,775 tokens (not a block multiple) and 3.52x from 16.83 GiB."""
    out = plan_json("rtx-pro-6000", kv_cache_memory="16.83", engine_version="0.25.1")
    low, high = out["kv_cache_tokens_range"]  # type: ignore[misc]
    assert low <= 460_775 <= high
    assert out["max_concurrency"] == 3.52
    # 30,630 blocks is the count that prints exactly 460,775
    exact = plan_json("rtx-pro-6000", kv_cache_memory=f"{30_630 * 589_824}B",
                      engine_version="0.25.1")  # fmt: skip
    assert exact["kv_cache_tokens"] == 460_775
    assert abs(out["weights_gib"] - 66.14) <= 0.3  # type: ignore[operator]


def test_fixture_logs_fall_in_predicted_ranges(shared_fixtures: Path) -> None:
    """Every gpt-oss log in shared/fixtures, parsed, lands inside the plan's range."""
    cases = {
        "gpt-oss-120b-gb10-vllm-0.14.0rc1.log": ("gb10", {"kv_cache_dtype": "fp8",
                                                          "max_num_batched_tokens": 8192}),
        "gpt-oss-120b-vllm-0.25.1-marlin.log": ("rtx-pro-6000", {}),
    }  # fmt: skip
    for name, (hardware, extra) in cases.items():
        logged = logged_capacity((shared_fixtures / "logs" / "vllm" / name).read_text())
        assert logged is not None
        assert logged.kv_memory_gib
        assert logged.version
        out = plan_json(hardware, kv_cache_memory=logged.kv_memory_gib,
                        engine_version=logged.version, **extra)  # fmt: skip
        low, high = out["kv_cache_tokens_range"]  # type: ignore[misc]
        assert low <= logged.tokens <= high, name
        assert out["max_concurrency"] == logged.max_concurrency, name


def test_fp8_doubles_capacity_and_largest_len_for_n() -> None:
    out = plan_json("gb10", kv_cache_memory="37.3", concurrency=16)
    alt = out["kv_dtype_alternative"]
    assert alt["kv_cache_dtype"] == "fp8"  # type: ignore[index]
    assert alt["max_concurrency"] == 16.31  # type: ignore[index]
    # 16 full-length requests do not fit in bf16 (8.15x), so the length must shrink...
    assert 0 < out["largest_max_model_len"] < 131_072  # type: ignore[operator]
    # ...and at that length they do fit: blocks(L) x 16 <= 67,902
    length = out["largest_max_model_len"]
    assert (-(-length // 16) + 137) * 16 <= 67_902  # type: ignore[operator]
    assert (-(-(length + 16) // 16) + 137) * 16 > 67_902  # type: ignore[operator]


def test_decode_ceiling_reads_active_experts_only() -> None:
    """~5.0 GB read per token at 273 GB/s: about 55 tok/s (ENGINE-FACTS.md)."""
    out = plan_json("gb10", kv_cache_memory="37.3")
    assert 4.9e9 < out["active_bytes_per_token"] < 5.1e9  # type: ignore[operator]
    assert 53 < out["decode_ceiling_tok_s"] < 56  # type: ignore[operator]
