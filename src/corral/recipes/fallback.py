"""The fallback for a model without a recipe: a generic recipe per engine and hardware, with
the settings the planner chooses and the parsers the model's own config points at.

Tier settings are data (`fallback.yaml`), the model_type → parser map too
(`model_parsers.yaml`). The planner (planner/plan.py) sizes the context: the longest
`max_model_len` at which the tier's number of full-length requests fit in the KV memory
left after the weights, capped by the model's own limit and the tier's cap. Where the
planner cannot size the model (no profile for the hardware, an architecture it does not
know, no config.json here), the tier's cap stands and the reason says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from corral.config import Capabilities
from corral.errors import CorralError
from corral.hardware.profiles import load_profile
from corral.planner.plan import GIB, Plan, PlanInputs, make_plan
from corral.recipes.schema import Defaults, Recipe


@dataclass(frozen=True)
class Fallback:
    """Why the generic recipe was used, and what corral chose for it (and from where)."""

    generic: str
    reason: str
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@cache
def _data(name: str) -> Any:
    return yaml.safe_load(resources.files("corral.recipes").joinpath(name).read_text("utf-8"))


def tier(hardware: str) -> dict[str, Any]:
    tiers: dict[str, dict[str, Any]] = _data("fallback.yaml")["tiers"]
    return tiers.get(hardware, tiers["gpu"])


def read_config(model_dir: Path | None) -> dict[str, Any] | None:
    path = model_dir / "config.json" if model_dir else None
    if path is None or not path.is_file():
        return None
    try:
        config: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return config


def tokenizer_tokens(model_dir: Path | None) -> set[str]:
    """The tokens of the model's tokenizer.json (vocabulary and added tokens); empty if none."""
    path = model_dir / "tokenizer.json" if model_dir else None
    if path is None or not path.is_file():
        return set()
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return set()
    vocab = (data.get("model") or {}).get("vocab") or {}
    added = {t.get("content", "") for t in data.get("added_tokens") or []}
    return set(vocab if isinstance(vocab, dict) else ()) | added


def parsers_for(
    config: dict[str, Any] | None, engine: str, tokens: set[str] | None = None
) -> tuple[dict[str, str], str]:
    """(parsers, where they came from) for `engine`, from config.json's model_type; a rule
    whose `requires_tokens` the tokenizer lacks is passed over (and said so)."""
    if config is None:
        return {}, "no config.json readable here: no tool or reasoning parser set"
    names = {config.get("model_type"), *(config.get("architectures") or [])[:1]}
    skipped = []
    for rule in _data("model_parsers.yaml"):
        if rule["model_type"] not in names:
            continue
        missing = sorted(set(rule.get("requires_tokens", [])) - (tokens or set()))
        if missing:
            skipped.append(f"{rule.get(engine)} needs tokens {missing}")
            continue
        found: dict[str, str] = rule.get(engine) or {}
        return found, f"model_type {rule['model_type']!r} → {found or 'none'} ({rule['source']})"
    why = "; ".join(skipped) or "it is not in model_parsers.yaml"
    return {}, f"model_type {config.get('model_type')!r}: no parsers ({why})"


def plan_context(
    model_dir: Path, hardware: str, settings: dict[str, Any], model_max: int | None
) -> tuple[int, Plan]:
    """The longest context at which the tier's concurrency fits, and the plan for it."""
    profile = load_profile(hardware)
    inputs = PlanInputs(
        model=str(model_dir),
        gpu_memory_utilization=settings.get("gpu_memory_utilization"),
        max_num_batched_tokens=settings.get("max_num_batched_tokens"),
        kv_cache_memory=str(settings["kv_cache_gib"]) if "kv_cache_gib" in settings else None,
        concurrency=settings["concurrency"],
        max_model_len=1024,
    )
    probe = make_plan(inputs, profile)
    length = min(probe.largest_max_len, model_max or probe.largest_max_len, settings["context_cap"])
    final = make_plan(replace(inputs, max_model_len=length), profile)
    return length, final


def plan_figures(plan: Plan) -> dict[str, Any]:
    return {
        "kv_cache_gib": round(plan.kv_memory_bytes[1] / GIB, 2),
        "kv_cache_tokens": plan.capacity.tokens,
        "max_concurrency": round(plan.capacity.max_concurrency, 2),
        "weights_gib": round(plan.weights.loaded_bytes / GIB, 2),
    }


def choose_settings(
    model_dir: Path | None, hardware: str, config: dict[str, Any] | None
) -> tuple[dict[str, Any], list[str]]:
    """The tier's settings plus the planner's max_model_len (and figures), with notes."""
    settings = dict(tier(hardware))
    model_max = (config or {}).get("max_position_embeddings")
    fallback_len = min(model_max or settings["context_cap"], settings["context_cap"])
    if model_dir is None or config is None:
        settings["max_model_len"] = fallback_len
        return settings, [f"max_model_len {fallback_len}: the tier's cap (no model config here)"]
    try:
        length, plan = plan_context(model_dir, hardware, settings, model_max)
    except CorralError as exc:
        settings["max_model_len"] = fallback_len
        return settings, [f"max_model_len {fallback_len}: the tier's cap; planner: {exc}"]
    settings |= {"max_model_len": length, "planner": plan_figures(plan)}
    return settings, [
        f"max_model_len {length}: {_bound(length, model_max, settings['context_cap'])}; "
        f"planner ({plan.engine.family} formula): {settings['concurrency']} full-length "
        f"requests must fit (model limit {model_max}, tier cap {settings['context_cap']})"
    ]


def _bound(length: int, model_max: int | None, cap: int) -> str:
    """Which limit set the context: the model's, the tier's, or the KV memory."""
    if length == model_max:
        return "the model's own limit (the KV cache holds more)"
    if length == cap:
        return "the tier's cap (the KV cache holds more)"
    return "the longest the KV cache holds"


def engine_args(engine: str, settings: dict[str, Any], parsers: dict[str, str]) -> list[str]:
    """The flags that carry the tier settings and parsers to `engine`."""
    flags: dict[str, str] = _data("fallback.yaml")["engine_flags"].get(engine) or {}
    args: list[str] = []
    for key in ("gpu_memory_utilization", "max_num_batched_tokens"):
        if key in settings and key in flags:
            args += [flags[key], str(settings[key])]
    if "tool_call_parser" in parsers and "tool_call_parser" in flags:
        args += [flags["tool_call_parser"], parsers["tool_call_parser"]]
        args += [flags["auto_tool_choice"]] if "auto_tool_choice" in flags else []
    if "reasoning_parser" in parsers and "reasoning_parser" in flags:
        args += [flags["reasoning_parser"], parsers["reasoning_parser"]]
    return args


def apply(
    generic: Recipe, engine: str, settings: dict[str, Any], parsers: dict[str, str]
) -> Recipe:
    """The generic recipe with the chosen settings and parsers filled in."""
    length = int(settings["max_model_len"])
    defaults = Defaults(
        **{**generic.defaults.model_dump(), "max_model_len": length}
        | ({"kv_cache_gib": settings["kv_cache_gib"]} if "kv_cache_gib" in settings else {})
    )
    tools = "tool_call_parser" in parsers or engine == "llama-server"
    capabilities = Capabilities(
        **generic.capabilities.model_dump()
        | {"tools": tools, "auto_tool_choice": tools, "context_length": length}
        | {"reasoning": "reasoning_parser" in parsers}
    )
    return generic.model_copy(
        update={
            "args": [*generic.args, *engine_args(engine, settings, parsers)],
            "defaults": defaults,
            "capabilities": capabilities,
        }
    )


def build(
    generic: Recipe, hardware: str, model_dir: Path | None, reason: str
) -> tuple[Recipe, Fallback]:
    """The filled-in generic recipe for a model without one, and the account of it."""
    config = read_config(model_dir)
    engine = generic.match.engine
    parsers, parser_note = parsers_for(config, engine, tokenizer_tokens(model_dir))
    settings, notes = choose_settings(model_dir, hardware, config)
    recipe = apply(generic, engine, settings, parsers)
    return recipe, Fallback(generic.name, reason, settings | parsers, [*notes, parser_note])
