"""Weights: bytes the checkpoint holds, bytes the engine loads, bytes one token reads.

From safetensors headers when the files exist (exact). Otherwise from config.json and the
quantization: MXFP4 experts at 4.25 bits per weight, bf16 for everything the checkpoint
leaves unquantized. When vLLM's MXFP4 MoE kernel pads the expert matrices (Marlin on
SM 12.x rounds hidden to 256 and intermediate to 128), the loaded size grows by the padding.

Bytes read per decoded token: every non-expert weight once (attention, norms, router,
lm_head), one row of the embedding, and only the `experts_per_token` experts a token is
routed to. That is the numerator of the single-stream decode ceiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from corral.planner.modelspec import DATA_DIR, ModelSpec

GIB = 2**30


@dataclass(frozen=True)
class Weights:
    checkpoint_bytes: int  # what the files hold (or would hold)
    loaded_bytes: int  # what the engine allocates, kernel padding included
    active_bytes_per_token: int  # read once per decoded token
    source: str  # "safetensors headers", "index total_size", "config estimate"
    padding_bytes: int = 0


@dataclass(frozen=True)
class Parts:
    """Parameter counts by role; expert params are counted for all experts."""

    dense: int  # attention, norms, router, biases: read every token
    embed: int  # input embedding: one row read per token
    lm_head: int  # read in full every token (0 when tied to the embedding)
    experts: int  # all experts of all layers
    expert_bias: int


def quant_table(path: Path = DATA_DIR / "quantization.yaml") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def estimate_weights(model: ModelSpec, moe_kernel: str | None) -> Weights:
    """Weights from headers when present, else from the config; padding added either way."""
    parts = param_parts(model)
    padded = param_parts(model, moe_kernel) if moe_kernel else parts
    est_ckpt = _bytes_of(model, parts)
    padding = max(0, _bytes_of(model, padded) - est_ckpt) if model.quant_method == "mxfp4" else 0
    active = _active_bytes(model, parts)
    if model.tensors:
        ckpt = sum(t.nbytes for t in model.tensors)
        return Weights(ckpt, ckpt + padding, _active_from_tensors(model), "safetensors headers",
                       padding)  # fmt: skip
    if model.index_total_size:
        total = model.index_total_size
        return Weights(total, total + padding, active, "index total_size", padding)
    return Weights(est_ckpt, est_ckpt + padding, active, "config estimate", padding)


def param_parts(model: ModelSpec, moe_kernel: str | None = None) -> Parts:
    """Parameter counts from config.json (for MoE, with the kernel's padded shapes)."""
    c = model.config
    hidden, layers = int(c["hidden_size"]), model.num_layers
    heads, kv, hd = int(c["num_attention_heads"]), model.num_kv_heads, model.head_dim
    bias = bool(model.arch.get("qkv_bias"))
    attn = hidden * hd * (heads + 2 * kv) + heads * hd * hidden
    attn += (heads + 2 * kv) * hd * bias
    vocab = int(c["vocab_size"])
    embed = vocab * hidden
    lm_head = 0 if c.get("tie_word_embeddings") else vocab * hidden
    if model.arch["params"] == "gpt_oss":
        return _gpt_oss_parts(model, attn, embed, lm_head, moe_kernel)
    inter = int(c["intermediate_size"])
    per_layer = attn + 3 * hidden * inter + 2 * hidden
    return Parts(per_layer * layers + hidden, embed, lm_head, 0, 0)


def _gpt_oss_parts(
    model: ModelSpec, attn: int, embed: int, lm_head: int, moe_kernel: str | None
) -> Parts:
    """gpt-oss: o_proj bias and per-head sinks, a router, experts with biases."""
    c = model.config
    hidden, inter, layers = int(c["hidden_size"]), int(c["intermediate_size"]), model.num_layers
    experts = int(c["num_local_experts"])
    heads = int(c["num_attention_heads"])
    pad = quant_table()["mxfp4_moe_padding"].get(moe_kernel or "", {})
    h = _round_up(hidden, int(pad.get("hidden", 1)))
    i = _round_up(inter, int(pad.get("intermediate", 1)))
    attn_extra = hidden + heads  # o_proj bias + attention sinks
    router = hidden * experts + experts
    dense = layers * (attn + attn_extra + router + 2 * hidden) + hidden
    expert_w = layers * experts * (h * 2 * i + i * h)
    expert_b = layers * experts * (2 * i + h)
    return Parts(dense, embed, lm_head, expert_w, expert_b)


def _round_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


def _dense_bytes_per_param(model: ModelSpec) -> float:
    return 4.0 if model.dtype in ("float32", "float") else 2.0


def _expert_bits(model: ModelSpec) -> float:
    bits = quant_table()["bits_per_weight"]
    return (
        float(bits["mxfp4"]) if model.quant_method == "mxfp4" else 8 * _dense_bytes_per_param(model)
    )


def _bytes_of(model: ModelSpec, p: Parts) -> int:
    dense_b = _dense_bytes_per_param(model)
    unquantized = p.dense + p.embed + p.lm_head + p.expert_bias
    return int(unquantized * dense_b + p.experts * _expert_bits(model) / 8)


def _active_bytes(model: ModelSpec, p: Parts) -> int:
    """Bytes one decoded token reads: all dense weights, one embedding row, top-k experts."""
    dense_b = _dense_bytes_per_param(model)
    share = _expert_share(model)
    hidden = int(model.config["hidden_size"])
    read = (p.dense + p.lm_head + hidden + p.expert_bias * share) * dense_b
    lm_tied = p.embed if p.lm_head == 0 else 0  # a tied lm_head reads the whole embedding
    return int(read + lm_tied * dense_b + p.experts * share * _expert_bits(model) / 8)


def _expert_share(model: ModelSpec) -> float:
    c = model.config
    experts = c.get("num_local_experts") or c.get("num_experts")
    top_k = c.get("experts_per_token") or c.get("num_experts_per_tok")
    return float(top_k) / float(experts) if experts and top_k else 1.0


def _active_from_tensors(model: ModelSpec) -> int:
    """Per-token bytes from real tensors: experts scaled by top-k share, one embedding row."""
    share = _expert_share(model)
    tied = not any(t.name.startswith("lm_head") for t in model.tensors)
    total = 0.0
    for t in model.tensors:
        if "embed_tokens" in t.name and not tied:
            total += t.nbytes / max(1, t.shape[0])
        elif ".experts." in t.name:
            total += t.nbytes * share
        else:
            total += t.nbytes
    return int(total)
