"""The planner beside the engine: what corral.planner predicts for the run just started.

Called after startup with the facts the engine logged. Given the KV memory the engine
reported (or, on CPU, the KV space corral gave it), the planner's token count and
concurrency are its exact mode; weights and batch size are its predictions. The report
prints these `planned.*` facts beside the measured ones.
"""

from __future__ import annotations

from corral.errors import CorralError
from corral.recipes.prepare import Prepared

GIB = 2**30


def _kv_memory(prepared: Prepared, facts: dict[str, str]) -> str | None:
    if "kv_cache_memory_gib" in facts:
        return facts["kv_cache_memory_gib"]
    return dict(prepared.launch.env).get("VLLM_CPU_KVCACHE_SPACE") or None


def plan_figures(prepared: Prepared, facts: dict[str, str]) -> dict[str, tuple[float | str, str]]:
    """Planned figures by fact name; only a `note` saying why when the planner can't plan
    this deployment (an unknown hardware kind, a model folder not visible from here ...)."""
    from corral.hardware.profiles import load_profile
    from corral.planner.plan import PlanInputs, make_plan

    dep, recipe = prepared.deployment, prepared.choice.recipe
    inputs = PlanInputs(
        model=str(prepared.launch.model.path),
        engine_version=facts.get("engine_version"),
        max_model_len=dep.max_model_len or recipe.defaults.max_model_len,
        kv_cache_memory=_kv_memory(prepared, facts),
    )
    try:
        plan = make_plan(inputs, load_profile(prepared.hardware_kind))
    except (CorralError, OSError, ValueError, KeyError) as exc:
        reason = exc.message if isinstance(exc, CorralError) else f"{type(exc).__name__}: {exc}"
        return {"note": (reason.splitlines()[0][:300], "")}
    return {
        "model_load_gib": (round(plan.weights.loaded_bytes / GIB, 2), "GiB"),
        "kv_cache_memory_gib": (round(plan.kv_memory_bytes[1] / GIB, 2), "GiB"),
        "kv_cache_tokens": (float(plan.capacity.tokens), "tokens"),
        "max_concurrency": (round(plan.capacity.max_concurrency, 2), "x"),
        "max_num_batched_tokens": (float(plan.settings["max_num_batched_tokens"]), "tokens"),
    }
