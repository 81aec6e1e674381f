"""The planner's word on a candidate before anything restarts: can it start, and how many
of the workload's requests does its KV cache hold at once?"""

from __future__ import annotations

from corral.errors import CorralError
from corral.recipes.prepare import Prepared
from corral.tune.space import Candidate
from corral.tune.workload import Workload


def _number(candidate: Candidate, key: str) -> int | None:
    value = candidate.settings.get(key)
    return int(value) if value is not None else None


def engine_rules(candidate: Candidate, max_len: int) -> str | None:
    """vLLM's own start-up checks on these settings (it refuses to start otherwise)."""
    batched, seqs = _number(candidate, "max_num_batched_tokens"), _number(candidate, "max_num_seqs")
    chunked = candidate.settings.get("enable_chunked_prefill", True)
    if batched is not None and not chunked and batched < max_len:
        return (f"with chunked prefill off, max_num_batched_tokens {batched} must be at least "
                f"max_model_len {max_len} (vLLM refuses to start)")  # fmt: skip
    if batched is not None and seqs is not None and batched < seqs:
        return f"max_num_batched_tokens {batched} is below max_num_seqs {seqs} (vLLM refuses)"
    return None


def check(prepared: Prepared, candidate: Candidate, workload: Workload) -> tuple[str | None, str]:
    """(why it cannot fit or None, the planner's figures as a line)."""
    if prepared.deployment.engine != "vllm":
        return None, "the planner models vLLM only: not checked"
    max_len = prepared.deployment.max_model_len or prepared.choice.recipe.defaults.max_model_len
    rule = engine_rules(candidate, max_len or 0)
    if rule is not None:
        return rule, ""
    try:
        capacity = _capacity(prepared, candidate, max_len)
    except CorralError as exc:
        return exc.message.splitlines()[0], ""
    per_request = workload.longest
    if max_len and per_request > max_len:
        return f"the workload's {per_request}-token requests exceed max_model_len {max_len}", ""
    holds = capacity // per_request
    figures = f"KV {capacity:,} tokens: {holds} requests of {per_request} tokens at once"
    if holds < 1:
        return f"the KV cache ({capacity:,} tokens) cannot hold one {per_request}-token request", ""
    return None, figures


def _capacity(prepared: Prepared, candidate: Candidate, max_len: int | None) -> int:
    from corral.hardware.profiles import load_profile
    from corral.planner.plan import PlanInputs, make_plan

    inputs = PlanInputs(
        model=str(prepared.launch.model.path),
        max_model_len=max_len,
        max_num_batched_tokens=_number(candidate, "max_num_batched_tokens"),
        kv_cache_dtype=str(candidate.settings.get("kv_cache_dtype", "auto")),
        kv_cache_memory=dict(prepared.launch.env).get("VLLM_CPU_KVCACHE_SPACE") or None,
    )
    return make_plan(inputs, load_profile(prepared.hardware_kind)).capacity.tokens
