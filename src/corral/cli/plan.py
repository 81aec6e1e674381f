"""`corral plan`: what fits, computed the way vLLM computes it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from corral import naming
from corral.cli.common import config_from, home_of, print_json
from corral.config import CorralConfig
from corral.errors import PlanError, StoreError
from corral.hardware.profiles import HardwareProfile, load_profile
from corral.planner.modelspec import builtin_names
from corral.planner.plan import GIB, Plan, PlanInputs, make_plan, to_json
from corral.store.roots import store_roots


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(  # noqa: PLR0917  (a Typer command: one parameter per option)
    model: str = typer.Argument(
        ...,
        help="a store name (HuggingFaceTB/SmolLM2-135M-Instruct), a short name (smollm2), a "
        "model folder (config.json + safetensors), or a built-in: gpt-oss-120b",
    ),
    hardware: str | None = typer.Option(
        None, "--hardware", "-H", help="profile: gb10, h100, h200, rtx-pro-6000, cpu"
    ),
    engine_version: str | None = typer.Option(
        None, "--engine-version", help="vLLM release to predict (default: the profile's)"
    ),
    gpu_memory_utilization: float | None = typer.Option(None, "--gpu-memory-utilization"),
    max_model_len: int | None = typer.Option(None, "--max-model-len"),
    max_num_batched_tokens: int | None = typer.Option(None, "--max-num-batched-tokens"),
    kv_cache_dtype: str = typer.Option("auto", "--kv-cache-dtype", help="auto, fp8, ..."),
    block_size: int | None = typer.Option(None, "--block-size"),
    kv_cache_memory: str | None = typer.Option(
        None,
        "--kv-cache-memory",
        help="KV memory: GiB as the engine logs it (37.3, a range) or exact bytes (4096B)",
    ),
    memory: float | None = typer.Option(None, "--memory", help="device memory in GiB"),
    non_kv_overhead: float | None = typer.Option(
        None,
        "--non-kv-overhead",
        help="GiB the engine keeps beside weights and KV (activations, graphs), measured for "
        "this model; default: the profile's estimate",
    ),
    bandwidth: float | None = typer.Option(None, "--bandwidth", help="memory GB/s"),
    concurrency: int = typer.Option(
        1, "--concurrency", "-n", min=1, help="N for the largest max-model-len"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    show_explain: bool = typer.Option(False, "--explain", help="show every formula"),
    config: Path | None = typer.Option(None, "--config", "-c", help="corral.yaml (store roots)"),
) -> None:
    """Predict weights, KV cache tokens, concurrency and decode ceiling before deploying.

    Figures follow vLLM v1's own arithmetic for the release it names (hybrid
    sliding-window groups, block rounding, batch defaults). Given the KV memory a
    running engine logged, the token count and concurrency match that engine's log.

    Example (the seed's GB10 deployment; vLLM logged 543,248 tokens and 8.15x):

        corral plan gpt-oss-120b --hardware gb10 --max-model-len 131072 --kv-cache-memory 37.3

    The default model, from the store:  corral plan smollm2 --hardware cpu --kv-cache-memory 1
    """
    profile = _profile(hardware, memory, bandwidth)
    inputs = PlanInputs(
        plan_model(model, config_from(config)), engine_version, gpu_memory_utilization,
        max_model_len, max_num_batched_tokens,
        kv_cache_dtype, block_size, kv_cache_memory, memory, bandwidth, concurrency,
        non_kv_overhead_gib=non_kv_overhead,
    )  # fmt: skip
    result = make_plan(inputs, profile)
    if as_json:
        print_json(to_json(result))
        return
    console = Console()
    console.print(summary_table(result))
    if show_explain:
        for line in explain_lines(result):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def plan_model(name: str, cfg: CorralConfig) -> str:
    """A built-in name or folder as given; a store or short name as its folder in the store.
    A name found nowhere gets "did you mean" over the built-ins and the store's names."""
    if name in builtin_names() or Path(name).expanduser().is_dir():
        return name
    roots = store_roots(cfg, home_of(cfg))
    try:
        return str(naming.model_folder(name, roots))
    except StoreError as exc:
        known = naming.known_models(roots, builtin_names())
        raise PlanError(
            f"{name!r} is not a built-in model, a model folder, or in the store ({exc.message})",
            hint=naming.did_you_mean(name, known)
            or f"built-in: {', '.join(builtin_names())}; the store: `corral models list`",
        ) from None


def _profile(name: str | None, memory: float | None, bandwidth: float | None) -> HardwareProfile:
    """The named profile; without one, a generic CUDA GPU of `--memory` GiB."""
    if name:
        return load_profile(name)
    return HardwareProfile(
        name="custom",
        description="a GPU described by --memory/--bandwidth",
        platform="cuda",
        memory_gib=memory,
        engine_visible_memory_gib=memory,
        bandwidth_gb_s=bandwidth,
    )


def summary_table(p: Plan) -> Table:
    s = p.settings
    table = Table(title=f"{p.model} on {p.hardware}, vLLM {p.engine.version}", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    lo, hi = p.tokens_range
    clo, chi = p.concurrency_range
    rows = [
        ("weights", f"{p.weights.loaded_bytes / GIB:.2f} GiB ({p.weights.source})"),
        ("KV bytes / token / layer", f"{p.kv_bytes_per_token_per_layer:,} B"),
        ("KV bytes / token", f"{p.kv_bytes_per_token:,} B ({s['kv_cache_dtype']})"),
        ("KV memory", f"{p.kv_memory_bytes[1] / GIB:.2f} GiB ({p.kv_memory_source})"),
        ("KV cache tokens", f"{p.capacity.tokens:,}  (range {lo:,} .. {hi:,})"),
        (f"max concurrency @ {s['max_model_len']:,}",
         f"{p.capacity.max_concurrency:.2f}x  (range {clo:.2f} .. {chi:.2f})"),
        (f"largest max-model-len for {s['concurrency']}", f"{p.largest_max_len:,}"),
        (f"with {p.alt_kv['kv_cache_dtype']} KV",
         f"{p.alt_kv['kv_cache_tokens']:,} tokens, {p.alt_kv['max_concurrency']:.2f}x"),
        ("decode ceiling (1 stream)", _ceiling_text(p)),
        ("max_num_batched_tokens",
         f"{s['max_num_batched_tokens']:,} ({s['max_num_batched_tokens_source']})"),
        ("block size", str(s["block_size"])),
        ("formula family", f"{p.engine.family} (checked: {p.engine.verified})"),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    return table


def _ceiling_text(p: Plan) -> str:
    if p.decode_ceiling_tok_s is None:
        return "unknown bandwidth (pass --bandwidth)"
    active = p.weights.active_bytes_per_token / 1e9
    return f"{p.decode_ceiling_tok_s:.1f} tok/s ({active:.2f} GB read per token)"


def explain_lines(p: Plan) -> list[str]:
    """Each figure as `name = formula = values = result`, one part per line."""
    lines = ["", "how each figure is computed:"]
    for step in p.steps:
        pad = " " * (len(step.name) + 1)
        lines += [f"  {step.name} = {step.formula}", f"  {pad}= {step.values}",
                  f"  {pad}= {step.result}"]  # fmt: skip
    return lines
