"""vLLM v1's KV cache arithmetic, reproduced step by step (pure functions, no I/O).

The steps and where vLLM does them (vllm/v1/core/kv_cache_utils.py unless noted):

1. Page: one block of one layer = 2 (K and V) x block_size x kv_heads x head_dim x dtype
   bytes (`AttentionSpec.page_size_bytes`, vllm/v1/kv_cache_interface.py).
2. Groups (`_get_kv_cache_groups_uniform_page_size`): layers of one attention type share a
   block table. With several types, each type is split into groups of `group_size` layers
   (the smallest type's count, or the largest if it is < 1.5x the smallest); gpt-oss-120b's
   18 sliding + 18 full layers make two groups of 18.
3. Blocks (`get_num_blocks`): num_blocks = available // page // group_size. One block id
   names one page in every layer of a group, so a block costs page x group_size bytes.
4. Blocks one request needs at max_model_len (`max_memory_usage_bytes` of each spec):
   full layers cdiv(max_len, block); sliding layers cdiv(min(window - 1 + T, max_len),
   block) + 1, where T is max_num_batched_tokens (x concurrent batches from 0.26 on).
5. Maximum concurrency = num_blocks / (blocks per request summed over groups).
6. "KV cache size ... tokens": up to 0.20, num_blocks // num_groups x block_size; from
   0.22, int(concurrency x max_model_len) (`get_kv_cache_capacity`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

AttnType = Literal["full", "sliding"]
TokensRule = Literal["blocks", "concurrency"]


@dataclass(frozen=True)
class Layout:
    """How the model's layers map onto vLLM's KV cache groups."""

    page_bytes: int  # one block of one layer
    block_size: int
    group_size: int  # layers per group = tensors sharing one block id
    groups: tuple[AttnType, ...]  # the attention type of each group
    sliding_window: int | None

    @property
    def block_bytes(self) -> int:
        return self.page_bytes * self.group_size


@dataclass(frozen=True)
class Capacity:
    num_blocks: int
    blocks_per_request: int
    max_concurrency: float
    tokens: int


def kv_bytes_per_token_per_layer(kv_heads: int, head_dim: int, dtype_bytes: int) -> int:
    return 2 * kv_heads * head_dim * dtype_bytes


def layout_for(
    layer_types: list[AttnType],
    bytes_per_token_per_layer: int,
    block_size: int,
    sliding_window: int | None,
) -> Layout:
    """Group layers the way `_get_kv_cache_groups_uniform_page_size` does."""
    # First-seen order, as vLLM groups them (the order does not change any figure).
    counts = {t: layer_types.count(t) for t in dict.fromkeys(layer_types)}
    smallest, largest = min(counts.values()), max(counts.values())
    group_size = largest if len(counts) == 1 or largest < smallest * 1.5 else smallest
    groups: list[AttnType] = []
    for attn_type, count in counts.items():
        groups.extend([attn_type] * math.ceil(count / group_size))
    page = bytes_per_token_per_layer * block_size
    window = sliding_window if "sliding" in counts else None
    return Layout(page, block_size, group_size, tuple(groups), window)


def num_blocks(layout: Layout, available_bytes: int) -> int:
    return max(0, available_bytes // layout.page_bytes // layout.group_size)


def blocks_for(layout: Layout, attn_type: AttnType, max_len: int, in_flight: int) -> int:
    """Blocks one request at `max_len` holds in one group of this attention type."""
    if attn_type == "full":
        return math.ceil(max_len / layout.block_size)
    assert layout.sliding_window is not None
    tokens = min(layout.sliding_window - 1 + in_flight, max_len)
    # +1: the window need not start at a block boundary (vLLM's comment: block 4 and a
    # 6-token window [CDEF] needs [XXCD][EF]).
    return math.ceil(tokens / layout.block_size) + 1


def blocks_per_request(layout: Layout, max_len: int, in_flight: int) -> int:
    return sum(blocks_for(layout, g, max_len, in_flight) for g in layout.groups)


def capacity(
    layout: Layout, available_bytes: int, max_len: int, in_flight: int, rule: TokensRule
) -> Capacity:
    blocks = num_blocks(layout, available_bytes)
    per_request = blocks_per_request(layout, max_len, in_flight)
    concurrency = blocks / per_request
    if rule == "blocks":
        tokens = blocks // len(layout.groups) * layout.block_size
    else:
        tokens = int(concurrency * max_len)  # the same float product vLLM truncates
    return Capacity(blocks, per_request, concurrency, tokens)


def largest_max_len(
    layout: Layout, available_bytes: int, concurrency: int, in_flight: int, upper: int
) -> int:
    """The largest max_model_len (<= upper) at which `concurrency` full-length requests fit.

    Binary search on blocks_per_request, which grows with max_len. 0 if none fits.
    """
    blocks = num_blocks(layout, available_bytes)
    lo, hi, best = 1, upper, 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if blocks_per_request(layout, mid, in_flight) * concurrency <= blocks:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def logged_gib_bounds(gib: float, step: float = 0.01) -> tuple[int, int]:
    """Byte range a memory figure logged rounded to `step` GiB can stand for (inclusive).

    vLLM prints available KV memory as round(bytes / 2**30, 2), so a logged 37.3 means
    anything in [37.295, 37.305) GiB.
    """
    low = math.ceil((gib - step / 2) * 2**30)
    high = math.ceil((gib + step / 2) * 2**30) - 1
    return max(0, low), high
