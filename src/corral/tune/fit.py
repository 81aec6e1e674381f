"""The planner's word on a candidate before anything restarts: can it start, and how many
of the workload's requests does its KV cache hold at once?"""

from __future__ import annotations

from corral.deploy.planning import flag_value
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


def _last_flag(argv: tuple[str, ...], *names: str) -> str | None:
    """The value of the last of `names` (long or short spelling) in argv."""
    found = [(i, a) for i, a in enumerate(argv) if a in names or a.split("=")[0] in names]
    return flag_value(argv[found[-1][0] :], found[-1][1].split("=")[0]) if found else None


def llama_slots(prepared: Prepared, candidate: Candidate, workload: Workload
                ) -> tuple[str | None, str]:  # fmt: skip
    """llama-server's KV pool (`--ctx-size`) split over `--parallel` slots, or shared
    (`--kv-unified`, each request up to `--kv-unified-per-slot`): does one of the workload's
    longest requests fit a slot, and how many fit the pool at once?"""
    argv = (*prepared.launch.argv, *candidate.args)
    pool = int(_last_flag(argv, "--ctx-size", "-c") or 4096)
    slots = int(_last_flag(argv, "--parallel", "-np") or 1)
    if "--kv-unified" in argv:
        per_slot = min(pool, int(_last_flag(argv, "--kv-unified-per-slot") or pool))
    else:
        per_slot = pool // slots
    longest = workload.longest
    if per_slot < longest:
        return (f"a slot holds {per_slot:,} tokens (--ctx-size {pool:,} over {slots} slots); "
                f"the workload's requests need {longest:,}"), ""  # fmt: skip
    at_once = min(slots, pool // longest)
    return None, (f"KV pool {pool:,} tokens, {_count(slots, 'slot')}: "
                  f"{_count(at_once, 'request')} of {longest} at once")  # fmt: skip


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check(prepared: Prepared, candidate: Candidate, workload: Workload) -> tuple[str | None, str]:
    """(why it cannot fit or None, the planner's figures as a line)."""
    if prepared.deployment.engine == "llama-server":
        return llama_slots(prepared, candidate, workload)
    if prepared.deployment.engine != "vllm":
        return None, "the planner models vLLM and llama-server only: not checked"
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
