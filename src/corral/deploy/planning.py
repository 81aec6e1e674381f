"""The planner beside the engine: what corral.planner predicts for the run just started.

Called after startup with the facts the engine logged. Given the KV memory the engine
reported (or, on CPU, the KV space corral gave it), the planner's token count and
concurrency are its exact mode; weights and batch size are its predictions. The report
prints these `planned.*` facts beside the measured ones.
"""

from __future__ import annotations

import re

from corral.errors import CorralError, KvCacheError
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

    if prepared.deployment.engine == "llama-server":
        return llama_figures(prepared)
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


def llama_figures(prepared: Prepared) -> dict[str, tuple[float | str, str]]:
    """llama-server's KV cache as the planner computes it from the GGUF header and `-c`
    (planner/llama.py), beside the `llama_kv_cache: size` line the engine logs."""
    from corral.planner.llama import context_of, kv_bytes
    from corral.store.gguf import read_header

    try:
        header = read_header(prepared.launch.model.path)
        context = context_of(header, prepared.launch.argv)
        kv = kv_bytes(header, context)
    except CorralError as exc:
        return {"note": (exc.message.splitlines()[0][:300], "")}
    return {
        "kv_cache_tokens": (float(context), "tokens"),
        "kv_cache_memory_mib": (round(kv / 2**20, 2), "MiB"),
        "model_size_gib": (round(header.size_bytes / GIB, 2), "GiB"),
    }


def _version_number(text: str | None) -> str | None:
    """'vllm 0.24.0' → '0.24.0'; None when the recipe names no version."""
    found = re.search(r"\d+\.\d+\.\d+", text or "")
    return found.group() if found else None


def flag_value(argv: tuple[str, ...], flag: str) -> str | None:
    """The value of `--flag VALUE` or `--flag=VALUE` in an engine's argv (last one wins)."""
    found = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(flag + "="):
            found = arg.split("=", 1)[1]
    return found


def preflight(prepared: Prepared) -> None:
    """Before a vLLM launch on a GPU: KvCacheError, with the planner's figures and the
    largest context that fits, when the memory settings leave no room for one request.
    Anything else the planner can't plan (no profile, a model folder not visible from here)
    is left to the engine."""
    from corral.hardware.profiles import load_profile
    from corral.planner.plan import PlanInputs, make_plan

    dep, launch = prepared.deployment, prepared.launch
    if dep.engine != "vllm":
        return
    utilization = flag_value(launch.argv, "--gpu-memory-utilization")
    kv_bytes = flag_value(launch.argv, "--kv-cache-memory-bytes")
    inputs = PlanInputs(
        model=str(launch.model.path),
        engine_version=_version_number(prepared.choice.recipe.engine_version),
        gpu_memory_utilization=float(utilization) if utilization else None,
        max_model_len=int(flag_value(launch.argv, "--max-model-len") or 0) or None,
        kv_cache_memory=f"{kv_bytes}B" if kv_bytes else None,
    )
    try:
        profile = load_profile(prepared.hardware_kind)
        if profile.platform != "cuda":
            return
        make_plan(inputs, profile)
    except KvCacheError:
        raise
    except (CorralError, OSError, ValueError, KeyError):
        return
