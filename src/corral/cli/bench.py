"""`corral bench ...`: story table, serving sweeps, prompt-side probes, compare."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from corral.bench import api, report
from corral.bench.metrics import parse_slo
from corral.bench.probes import ProbeSettings
from corral.bench.results import load_file, load_from_ledger
from corral.bench.serve import ServeSettings
from corral.bench.story import StorySettings
from corral.bench.timeline import Timeline
from corral.cli.common import config_from, home_of, print_json
from corral.errors import BenchError
from corral.ledger.db import open_ledger
from corral.paths import ledger_path

bench_app = typer.Typer(
    help="Measure an OpenAI-compatible endpoint: the seed's story table, load sweeps, "
    "prefill and prefix-cache probes, and comparisons between results. "
    "Metric definitions: docs/bench.md."
)
T = TypeVar("T", int, float)

TARGET_HELP = (
    "a gateway or engine URL (http://127.0.0.1:8000, with or without /v1) or a deployment "
    "name (its live gateway or engine, from the ledger)"
)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


def _list(text: str, kind: Callable[[str], T], option: str) -> list[T]:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BenchError(f"{option} takes comma-separated numbers, not {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise BenchError(f"{option} needs positive numbers, got {text!r}")
    return values


@contextmanager
def _live(quiet: bool) -> Iterator[api.Progress]:
    """Rich progress on stderr: one bar per load level, advanced per finished request."""
    if quiet:
        yield api.Progress()
        return
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        state: dict[str, Any] = {"task": bar.add_task("requests", total=None, status="")}

        def on_level(label: str, total: int) -> None:
            state["task"] = bar.add_task(label, total=total, status="")

        def on_done(tl: Timeline) -> None:
            status = "" if tl.error is None else "[red]" + tl.error[:40]
            bar.update(state["task"], advance=1, status=status)

        yield api.Progress(on_level, on_done)


def _emit(result: dict[str, Any], as_json: bool, save: Path | None) -> None:
    """Print the result; BenchError (exit 1) when not one request succeeded."""
    if save is not None:
        save.write_text(json.dumps(result, indent=2), encoding="utf-8")
    if as_json:
        print_json(result)
    else:
        typer.echo(report.render(result))
        if "ledger_id" in result:
            typer.echo(f"\nsaved in the ledger as bench result {result['ledger_id']}")
    failure = report.all_failed(result)
    if failure is not None:
        raise BenchError(
            f"every request failed ({failure}); nothing was recorded",
            hint="check the URL, --model and --api-key (`corral status` shows what runs)",
        )


def _resolve(
    target: str, model: str | None, api_name: str, config: Path | None, api_key: str | None
) -> api.Resolved:
    cfg = config_from(config)
    return api.resolve(target, model, api_name, cfg, home=home_of(cfg), api_key=api_key)


ModelOpt = typer.Option(None, "--model", "-m", help="served model name (default: the first)")
ApiOpt = typer.Option("chat", "--api", help="chat (/v1/chat/completions) or completions")
JsonOpt = typer.Option(False, "--json", help="print the full result as JSON")
SaveOpt = typer.Option(None, "--save", help="also write the JSON result to this file")
ConfigOpt = typer.Option(None, "--config", "-c", help="corral.yaml (for deployment names)")
TokOpt = typer.Option(
    None,
    "--tokenizer",
    help="model folder to count tokens with (default: the server's /tokenize, else the "
    "store's tokenizer of the deployment served)",
)
KeyOpt = typer.Option(
    None,
    "--api-key",
    envvar=["CORRAL_API_KEY", "OPENAI_API_KEY"],
    show_envvar=True,
    help="key sent on every request (the model lookup and /tokenize included)",
)
QuietOpt = typer.Option(False, "--quiet", "-q", help="no live progress")


@bench_app.command("story")
def story(  # noqa: PLR0917  (a Typer command: one parameter per option)
    target: str = typer.Argument(..., help=TARGET_HELP),
    model: str | None = ModelOpt,
    words: str = typer.Option("200,400,2000", help="story lengths in words"),
    tokens_per_word: float = typer.Option(1.5, help="max_tokens = words × this"),
    max_tokens: int | None = typer.Option(None, help="cap every story at this many tokens"),
    repeat: int = typer.Option(1, min=1, help="runs per story length"),
    api_name: str = ApiOpt,
    tokenizer: Path | None = TokOpt,
    as_json: bool = JsonOpt,
    save: Path | None = SaveOpt,
    config: Path | None = ConfigOpt,
    api_key: str | None = KeyOpt,
    quiet: bool = QuietOpt,
) -> None:
    """The seed's "Throughput Tests" table, with the true decode rate beside it.

    One story at a time, streamed; tokens from the server's usage (reasoning included and
    shown apart). Columns: tokens/(total seconds) as the seed computed it, TTFT, time to
    first visible token, and decode tok/s after the first token.

    Example (quick on a CPU):  corral bench story http://127.0.0.1:8000 --max-tokens 64
    """
    resolved = _resolve(target, model, api_name, config, api_key)
    settings = StorySettings(_list(words, int, "--words"), tokens_per_word, max_tokens, repeat)
    with _live(quiet or as_json) as progress:
        result = api.story_command(resolved, settings, tokenizer, progress)
    _emit(result, as_json, save)


@bench_app.command("serve")
def serve(  # noqa: PLR0917  (a Typer command: one parameter per option)
    target: str = typer.Argument(..., help=TARGET_HELP),
    model: str | None = ModelOpt,
    concurrency: str = typer.Option("1,2,4,8", help="closed-loop levels to sweep"),
    rate: str | None = typer.Option(None, help="Poisson arrival rates (req/s) instead"),
    requests: int = typer.Option(32, "--requests", "-n", min=1, help="measured per level"),
    warmup: int | None = typer.Option(
        None, min=0, help="excluded first requests per level (default: the level)"
    ),
    input_len: int = typer.Option(128, min=1, help="prompt length in tokens"),
    output_len: int = typer.Option(64, min=1, help="output length in tokens"),
    ignore_eos: bool = typer.Option(True, help="ask the engine to ignore EOS (fixed output)"),
    max_concurrency: int = typer.Option(0, min=0, help="cap in-flight requests in rate mode"),
    ramp: float = typer.Option(
        0.0,
        min=0.0,
        help="spread each level's first sends over this many seconds (default: all at once)",
    ),
    slo: str = typer.Option("", help="goodput SLOs, e.g. ttft=500ms,tpot=50ms"),
    seed: int = typer.Option(0, help="prompt and arrival seed"),
    temperature: float | None = typer.Option(
        None, help="sampling temperature (default: the server's; 0 = greedy)"
    ),
    plots: Path | None = typer.Option(None, help="write throughput/TTFT/TPOT PNGs here"),
    api_name: str = typer.Option("completions", "--api", help="completions or chat"),
    tokenizer: Path | None = TokOpt,
    as_json: bool = JsonOpt,
    save: Path | None = SaveOpt,
    config: Path | None = ConfigOpt,
    api_key: str | None = KeyOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Load sweep: synthetic prompts, fixed output length, percentiles and goodput.

    Prompts are counted with the server's /tokenize (or --tokenizer FOLDER, offline);
    tokens generated come from the server's usage. Warm-up requests are excluded.

    Example:  corral bench serve http://127.0.0.1:8000 --concurrency 1,4,16 -n 64
              --slo ttft=500ms,tpot=50ms --plots out/
    """
    settings = ServeSettings(
        concurrency=_list(concurrency, int, "--concurrency"),
        rates=_list(rate, float, "--rate") if rate else [],
        num_requests=requests,
        warmup=warmup,
        input_len=input_len,
        output_len=output_len,
        ignore_eos=ignore_eos,
        max_concurrency=max_concurrency,
        ramp=ramp,
        temperature=temperature,
        slo=parse_slo(slo),
        seed=seed,
    )
    resolved = _resolve(target, model, api_name, config, api_key)
    with _live(quiet or as_json) as progress:
        result = api.serve_command(resolved, settings, tokenizer, progress)
    if plots is not None:
        from corral.bench.plots import plot_serve

        result["plots"] = [str(p) for p in plot_serve(result, plots)]
    _emit(result, as_json, save)


@bench_app.command("probes")
def probes(  # noqa: PLR0917  (a Typer command: one parameter per option)
    target: str = typer.Argument(..., help=TARGET_HELP),
    model: str | None = ModelOpt,
    contexts: str = typer.Option("128,512,1024,2048", help="prefill test prompt lengths"),
    prefix_tokens: int = typer.Option(1024, min=16, help="shared prefix length (words)"),
    trials: int = typer.Option(3, min=1, help="requests per measurement (median taken)"),
    only: str | None = typer.Option(None, help="prefill or prefix-cache (default: both)"),
    api_name: str = typer.Option("completions", "--api", help="completions or chat"),
    tokenizer: Path | None = TokOpt,
    as_json: bool = JsonOpt,
    save: Path | None = SaveOpt,
    config: Path | None = ConfigOpt,
    api_key: str | None = KeyOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Prefill at several context lengths, and TTFT with and without a shared prefix.

    Example:  corral bench probes http://127.0.0.1:8000 --contexts 256,1024,3000
    """
    which = ("prefill", "prefix-cache") if only is None else (only,)
    if not set(which) <= {"prefill", "prefix-cache"}:
        raise BenchError(f"--only takes prefill or prefix-cache, not {only!r}")
    settings = ProbeSettings(_list(contexts, int, "--contexts"), prefix_tokens, trials)
    resolved = _resolve(target, model, api_name, config, api_key)
    with _live(quiet or as_json) as progress:
        result = api.probes_command(resolved, settings, tokenizer, which, progress)
    _emit(result, as_json, save)


def _load(ref: str, config: Path | None) -> dict[str, Any]:
    """A JSON file path, or a ledger id (a number)."""
    if ref.isdigit() and not Path(ref).exists():
        cfg = config_from(config)
        with open_ledger(ledger_path(home_of(cfg))) as ledger:
            return load_from_ledger(ledger, int(ref))
    return load_file(Path(ref))


@bench_app.command("compare")
def compare(  # noqa: PLR0917  (a Typer command: one parameter per option)
    a: str = typer.Argument(..., help="baseline: result JSON file or ledger id"),
    b: str = typer.Argument(..., help="candidate: result JSON file or ledger id"),
    threshold: float = typer.Option(5.0, help="flag changes worse than this many percent"),
    fail: bool = typer.Option(False, "--fail-on-regression", help="exit 1 on a regression"),
    different: bool = typer.Option(
        False, "--allow-different-workloads", help="compare even when the workloads differ"
    ),
    as_json: bool = JsonOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Deltas between two results of the same kind and workload; regressions flagged.

    Results of different workloads (prompt or output length, API, ...) are refused unless
    --allow-different-workloads, which prints the differences above the table.

    Example:  corral bench compare before.json after.json --threshold 3
    """
    left, right = _load(a, config), _load(b, config)
    if left.get("kind") != right.get("kind"):
        raise BenchError(f"cannot compare a {left.get('kind')} result with a {right.get('kind')}")
    _check_workloads(report.workload_differences(left, right), different)
    diff = report.compare(left, right, threshold / 100.0)
    if as_json:
        print_json(diff)
    else:
        typer.echo(report.compare_table(diff))
    if fail and diff["regressions"]:
        raise typer.Exit(1)


def _check_workloads(differences: list[str], allowed: bool) -> None:
    if not differences:
        return
    listed = "; ".join(differences)
    if not allowed:
        raise BenchError(
            f"the two results measured different workloads ({listed}): their figures "
            "are not comparable",
            hint="re-run one with the other's settings, or pass --allow-different-workloads",
        )
    Console(stderr=True).print(
        f"[bold red]WARNING: different workloads ({listed}); the deltas below compare "
        "unlike things[/]",
        highlight=False,
    )
