"""`corral plan`: predict the engine's own memory, KV and concurrency figures.

`make_plan(inputs, profile)` is the one entry point. It returns a `Plan`: every figure plus
a `steps` list that shows each figure's formula with the values put in (`--explain`).
Limits, up front: one GPU (no tensor/pipeline parallelism), attention layers of one page
size (no MLA or Mamba), and a non-KV overhead that is a per-profile estimate unless the
engine's logged KV memory is passed with `kv_cache_memory`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from corral.errors import DoesNotFit, PlanError
from corral.hardware.profiles import HardwareProfile
from corral.planner import kvcache
from corral.planner.engine import (
    EngineFamily,
    default_block_size,
    default_max_num_batched_tokens,
    engine_family,
    in_flight_tokens,
)
from corral.planner.modelspec import ModelSpec, load_model
from corral.planner.weights import Weights, estimate_weights

GIB = 2**30
FP8_KV = ("fp8", "fp8_e4m3", "fp8_e5m2", "fp8_ds_mla")


@dataclass(frozen=True)
class PlanInputs:
    model: str
    engine_version: str | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    max_num_batched_tokens: int | None = None
    kv_cache_dtype: str = "auto"
    block_size: int | None = None
    kv_cache_memory: str | None = None  # "37.3" (GiB as logged) or "40050483609B" (bytes)
    memory_gib: float | None = None
    bandwidth_gb_s: float | None = None
    concurrency: int = 1


@dataclass(frozen=True)
class Step:
    name: str
    formula: str
    values: str
    result: str


@dataclass
class Plan:
    model: str
    hardware: str
    engine: EngineFamily
    settings: dict[str, Any]
    weights: Weights
    kv_bytes_per_token_per_layer: int
    kv_bytes_per_token: int
    kv_memory_bytes: tuple[int, int, int]  # low, nominal, high
    kv_memory_source: str
    capacity: kvcache.Capacity
    tokens_range: tuple[int, int]
    concurrency_range: tuple[float, float]
    largest_max_len: int
    alt_kv: dict[str, Any]
    decode_ceiling_tok_s: float | None
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def make_plan(inputs: PlanInputs, profile: HardwareProfile) -> Plan:
    model = load_model(inputs.model)
    family = engine_family(inputs.engine_version or profile.default_vllm)
    settings = resolve_settings(inputs, profile, family, model)
    weights = estimate_weights(model, _moe_kernel(model, profile))
    per_layer = kvcache.kv_bytes_per_token_per_layer(
        model.num_kv_heads, model.head_dim, _kv_dtype_bytes(settings["kv_cache_dtype"])
    )
    layout = kvcache.layout_for(
        layer_types(model), per_layer, settings["block_size"], _window(model)
    )
    low, nominal, high, source = kv_memory(inputs, profile, settings, weights)
    plan = _assemble(
        inputs=inputs, profile=profile, family=family, settings=settings, model=model,
        weights=weights, layout=layout, memory=(low, nominal, high), source=source,
    )  # fmt: skip
    plan.steps = explain(plan, layout, profile, model)
    return plan


def resolve_settings(
    inputs: PlanInputs, profile: HardwareProfile, family: EngineFamily, model: ModelSpec
) -> dict[str, Any]:
    """Flags given, else the engine's own defaults for this hardware."""
    max_len = inputs.max_model_len or model.max_position_embeddings
    if not max_len:
        raise PlanError("the config has no max_position_embeddings: pass --max-model-len")
    batched = inputs.max_num_batched_tokens or default_max_num_batched_tokens(profile, family)
    util = inputs.gpu_memory_utilization or family.default_gpu_memory_utilization
    if not 0 < util <= 1:
        raise PlanError(f"--gpu-memory-utilization {util} must be in (0, 1]")
    return {
        "max_model_len": int(max_len),
        "max_num_batched_tokens": batched,
        "max_num_batched_tokens_source": "flag" if inputs.max_num_batched_tokens else "default",
        "in_flight_tokens": in_flight_tokens(profile, family, batched),
        "gpu_memory_utilization": util,
        "kv_cache_dtype": inputs.kv_cache_dtype,
        "block_size": inputs.block_size or default_block_size(profile),
        "concurrency": inputs.concurrency,
    }


def layer_types(model: ModelSpec) -> list[kvcache.AttnType]:
    rule = model.arch["sliding"]
    n = model.num_layers
    if rule == "layer_types" and model.config.get("layer_types"):
        return ["sliding" if "sliding" in t else "full" for t in model.config["layer_types"]]
    if rule == "all_if_set" and model.config.get("sliding_window"):
        return ["sliding"] * n
    return ["full"] * n


def _window(model: ModelSpec) -> int | None:
    window = model.config.get("sliding_window")
    return int(window) if window else None


def _kv_dtype_bytes(kv_cache_dtype: str) -> int:
    if kv_cache_dtype in FP8_KV:
        return 1
    if kv_cache_dtype in ("auto", "bfloat16", "float16", "half"):
        return 2  # "auto" follows the model dtype; vLLM runs fp32 checkpoints in 16 bits
    raise PlanError(
        f"--kv-cache-dtype {kv_cache_dtype!r} is not one the planner knows",
        hint="use auto, bfloat16, float16, fp8, fp8_e4m3 or fp8_e5m2",
    )


def _moe_kernel(model: ModelSpec, profile: HardwareProfile) -> str | None:
    return profile.mxfp4_moe_kernel if model.quant_method == "mxfp4" else None


def parse_memory(text: str) -> tuple[int, int, int, str]:
    """(low, nominal, high) bytes for --kv-cache-memory.

    '37.3' or '37.3GiB' is a figure as vLLM logs it (rounded to 0.01 GiB): a range.
    '40050483609B', or a bare integer of 2**20 or more, is an exact byte count.
    """
    raw = text.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(b|bytes|gib|g)?", raw, re.IGNORECASE)
    if not match:
        raise PlanError(f"--kv-cache-memory {text!r} is neither GiB (37.3) nor bytes (4096B)")
    number, unit = match[1], (match[2] or "").lower()
    if unit in ("b", "bytes") or (not unit and "." not in number and int(number) >= 2**20):
        exact = int(float(number))
        return exact, exact, exact, "exact bytes"
    gib = float(number)
    low, high = kvcache.logged_gib_bounds(gib)
    return low, int(gib * GIB), high, "logged GiB (+/- 0.005 rounding)"


def kv_memory(
    inputs: PlanInputs, profile: HardwareProfile, settings: dict[str, Any], weights: Weights
) -> tuple[int, int, int, str]:
    if inputs.kv_cache_memory:
        return parse_memory(inputs.kv_cache_memory)
    total = inputs.memory_gib or profile.engine_visible_memory_gib
    if profile.platform == "cpu" or not total:
        raise PlanError(
            f"no memory size for {profile.name}: pass --kv-cache-memory "
            "(the KV memory the engine logs, or VLLM_CPU_KVCACHE_SPACE on CPU) or --memory",
        )
    budget = settings["gpu_memory_utilization"] * total * GIB
    kv = int(budget - weights.loaded_bytes - profile.non_kv_overhead_gib * GIB)
    if kv <= 0:
        raise PlanError(
            f"weights {weights.loaded_bytes / GIB:.2f} GiB + non-KV overhead "
            f"{profile.non_kv_overhead_gib:.2f} GiB exceed the budget "
            f"{settings['gpu_memory_utilization']} x {total} GiB = {budget / GIB:.2f} GiB "
            f"by {-kv / GIB:.2f} GiB",
            hint="use a smaller or more quantized model, more memory, or a higher "
            "--gpu-memory-utilization",
        )
    return kv, kv, kv, "estimated: utilization x memory - weights - overhead"


def _assemble(
    *,
    inputs: PlanInputs,
    profile: HardwareProfile,
    family: EngineFamily,
    settings: dict[str, Any],
    model: ModelSpec,
    weights: Weights,
    layout: kvcache.Layout,
    memory: tuple[int, int, int],
    source: str,
) -> Plan:
    max_len, in_flight = settings["max_model_len"], settings["in_flight_tokens"]
    check_fits(layout, memory[1], max_len, in_flight)
    caps = [kvcache.capacity(layout, m, max_len, in_flight, family.tokens) for m in memory]
    per_layer = layout.page_bytes // layout.block_size
    return Plan(
        model=inputs.model,
        hardware=profile.name,
        engine=family,
        settings=settings,
        weights=weights,
        kv_bytes_per_token_per_layer=per_layer,
        kv_bytes_per_token=per_layer * model.num_layers,
        kv_memory_bytes=memory,
        kv_memory_source=source,
        capacity=caps[1],
        tokens_range=(caps[0].tokens, caps[2].tokens),
        concurrency_range=(caps[0].max_concurrency, caps[2].max_concurrency),
        largest_max_len=kvcache.largest_max_len(
            layout, memory[1], settings["concurrency"], in_flight, _upper(model, max_len)
        ),
        alt_kv=alternative_kv(layout, memory[1], settings, family, _upper(model, max_len)),
        decode_ceiling_tok_s=_ceiling(inputs, profile, weights),
        notes=list(model.notes),
    )


def check_fits(layout: kvcache.Layout, available: int, max_len: int, in_flight: int) -> None:
    """vLLM refuses to start when one full-length request does not fit; say by how much."""
    needed = kvcache.blocks_per_request(layout, max_len, in_flight) * layout.block_bytes
    if needed <= available:
        return
    fits = kvcache.largest_max_len(layout, available, 1, in_flight, max_len)
    raise DoesNotFit(
        f"one request at max-model-len {max_len:,} needs {needed / GIB:.2f} GiB of KV cache "
        f"but only {available / GIB:.2f} GiB is available: short by "
        f"{(needed - available) / GIB:.2f} GiB",
        hint=f"the largest max-model-len that fits is {fits:,}; or use --kv-cache-dtype fp8 "
        "or more memory",
    )


def _upper(model: ModelSpec, max_len: int) -> int:
    """Search bound for the largest max-model-len: the model's own context limit."""
    return max(max_len, model.max_position_embeddings or 0)


def alternative_kv(
    layout: kvcache.Layout,
    memory: int,
    settings: dict[str, Any],
    family: EngineFamily,
    upper: int,
) -> dict[str, Any]:
    """The same memory with the other KV width: fp8 halves the page, bf16 doubles it."""
    is_fp8 = settings["kv_cache_dtype"] in FP8_KV
    factor = 2 if is_fp8 else 0.5
    alt = replace(layout, page_bytes=int(layout.page_bytes * factor))
    max_len, in_flight = settings["max_model_len"], settings["in_flight_tokens"]
    cap = kvcache.capacity(alt, memory, max_len, in_flight, family.tokens)
    return {
        "kv_cache_dtype": "auto (bf16)" if is_fp8 else "fp8",
        "kv_cache_tokens": cap.tokens,
        "max_concurrency": round(cap.max_concurrency, 2),
        "largest_max_model_len": kvcache.largest_max_len(
            alt, memory, settings["concurrency"], in_flight, upper
        ),
    }


def _ceiling(inputs: PlanInputs, profile: HardwareProfile, weights: Weights) -> float | None:
    bandwidth = inputs.bandwidth_gb_s or profile.bandwidth_gb_s
    if not bandwidth:
        return None
    return bandwidth * 1e9 / weights.active_bytes_per_token


def explain(
    plan: Plan, layout: kvcache.Layout, profile: HardwareProfile, model: ModelSpec
) -> list[Step]:
    """Each figure's formula with the values put in, in the order vLLM computes them."""
    s, cap = plan.settings, plan.capacity
    dtype_bytes = plan.kv_bytes_per_token_per_layer // (2 * model.num_kv_heads * model.head_dim)
    steps = [
        Step(
            "weights loaded",
            "checkpoint + kernel padding",
            f"{plan.weights.checkpoint_bytes:,} + {plan.weights.padding_bytes:,} "
            f"({plan.weights.source}; kernel {profile.mxfp4_moe_kernel or 'none'})",
            f"{plan.weights.loaded_bytes / GIB:.2f} GiB",
        ),
        Step(
            "KV bytes/token/layer",
            "2 x kv_heads x head_dim x dtype_bytes",
            f"2 x {model.num_kv_heads} x {model.head_dim} x {dtype_bytes}",
            f"{plan.kv_bytes_per_token_per_layer:,} B",
        ),
        Step(
            "page",
            "bytes/token/layer x block_size",
            f"{plan.kv_bytes_per_token_per_layer:,} x {layout.block_size}",
            f"{layout.page_bytes:,} B",
        ),
        Step(
            "groups",
            "layers of one attention type, split in groups of group_size",
            f"{', '.join(layout.groups)}; group_size {layout.group_size}",
            f"{len(layout.groups)} groups",
        ),
        _memory_step(plan, profile),
        Step(
            "num_blocks",
            "available // page // group_size",
            f"{plan.kv_memory_bytes[1]:,} // {layout.page_bytes:,} // {layout.group_size}",
            f"{cap.num_blocks:,}",
        ),
        Step(
            "blocks/request",
            _bpr_formula(layout),
            _bpr_values(layout, s["max_model_len"], s["in_flight_tokens"]),
            f"{cap.blocks_per_request:,}",
        ),
        Step(
            "max concurrency",
            "num_blocks / blocks_per_request",
            f"{cap.num_blocks:,} / {cap.blocks_per_request:,}",
            f"{cap.max_concurrency:.2f}x",
        ),
        _tokens_step(plan, layout),
        Step(
            f"largest max-model-len for {s['concurrency']}",
            "max L with blocks_per_request(L) x N <= num_blocks",
            f"N = {s['concurrency']}",
            f"{plan.largest_max_len:,}",
        ),
    ]
    if plan.decode_ceiling_tok_s:
        steps.append(_ceiling_step(plan))
    return steps


def _memory_step(plan: Plan, profile: HardwareProfile) -> Step:
    low, nominal, high = plan.kv_memory_bytes
    if plan.kv_memory_source.startswith("estimated"):
        s = plan.settings
        values = (f"{s['gpu_memory_utilization']} x {profile.engine_visible_memory_gib} GiB - "
                  f"{plan.weights.loaded_bytes / GIB:.2f} GiB - "
                  f"{profile.non_kv_overhead_gib} GiB")  # fmt: skip
        return Step("KV memory", "util x memory - weights - overhead", values,
                    f"{nominal / GIB:.2f} GiB")  # fmt: skip
    return Step("KV memory", plan.kv_memory_source, f"{low:,} .. {high:,} B",
                f"{nominal:,} B")  # fmt: skip


def _bpr_formula(layout: kvcache.Layout) -> str:
    parts = []
    if "full" in layout.groups:
        parts.append("full: cdiv(max_len, block)")
    if "sliding" in layout.groups:
        parts.append("sliding: cdiv(min(window - 1 + T, max_len), block) + 1")
    return "sum over groups of " + "; ".join(parts)


def _bpr_values(layout: kvcache.Layout, max_len: int, in_flight: int) -> str:
    out = []
    for g in layout.groups:
        n = kvcache.blocks_for(layout, g, max_len, in_flight)
        if g == "full":
            out.append(f"cdiv({max_len:,}, {layout.block_size}) = {n}")
        else:
            out.append(f"cdiv(min({layout.sliding_window} - 1 + {in_flight}, {max_len:,}), "
                       f"{layout.block_size}) + 1 = {n}")  # fmt: skip
    return " + ".join(out)


def _tokens_step(plan: Plan, layout: kvcache.Layout) -> Step:
    cap, max_len = plan.capacity, plan.settings["max_model_len"]
    lo, hi = plan.tokens_range
    result = f"{cap.tokens:,} (range {lo:,}..{hi:,})"
    if plan.engine.tokens == "blocks":
        values = f"{cap.num_blocks:,} // {len(layout.groups)} x {layout.block_size}"
        return Step("KV cache tokens", "num_blocks // num_groups x block_size", values, result)
    values = f"int({cap.num_blocks:,} / {cap.blocks_per_request:,} x {max_len:,})"
    return Step("KV cache tokens", "int(max_concurrency x max_model_len)", values, result)


def _ceiling_step(plan: Plan) -> Step:
    active = plan.weights.active_bytes_per_token
    bandwidth = plan.decode_ceiling_tok_s * active / 1e9 if plan.decode_ceiling_tok_s else 0
    return Step("decode ceiling", "bandwidth / bytes read per token (active weights)",
                f"{bandwidth:,.0f} GB/s / {active / 1e9:.3f} GB",
                f"{plan.decode_ceiling_tok_s:.1f} tok/s")  # fmt: skip


def to_json(plan: Plan) -> dict[str, Any]:
    """The --json document; field names are part of corral's interface."""
    low, nominal, high = plan.kv_memory_bytes
    return {
        "model": plan.model,
        "hardware": plan.hardware,
        "engine": {
            "name": "vllm",
            "version": plan.engine.version,
            "family": plan.engine.family,
            "verified_against": plan.engine.verified,
        },
        "settings": {k: v for k, v in plan.settings.items() if not k.endswith("_source")},
        "weights_bytes": plan.weights.loaded_bytes,
        "weights_gib": round(plan.weights.loaded_bytes / GIB, 2),
        "checkpoint_bytes": plan.weights.checkpoint_bytes,
        "weights_source": plan.weights.source,
        "kernel_padding_bytes": plan.weights.padding_bytes,
        "kv_bytes_per_token_per_layer": plan.kv_bytes_per_token_per_layer,
        "kv_bytes_per_token": plan.kv_bytes_per_token,
        "kv_memory_bytes": nominal,
        "kv_memory_bytes_range": [low, high],
        "kv_memory_source": plan.kv_memory_source,
        "num_blocks": plan.capacity.num_blocks,
        "blocks_per_request": plan.capacity.blocks_per_request,
        "kv_cache_tokens": plan.capacity.tokens,
        "kv_cache_tokens_range": list(plan.tokens_range),
        "max_concurrency": round(plan.capacity.max_concurrency, 2),
        "max_concurrency_range": [round(c, 2) for c in plan.concurrency_range],
        "largest_max_model_len": plan.largest_max_len,
        "kv_dtype_alternative": plan.alt_kv,
        "active_bytes_per_token": plan.weights.active_bytes_per_token,
        "decode_ceiling_tok_s": _round(plan.decode_ceiling_tok_s),
        "notes": plan.notes,
    }


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 1)
