"""`corral tune DEPLOYMENT --workload W --slo ttft_p95=2s,tpot_p95=60ms`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from rich.console import Console

from corral.cli.common import config_from, home_of
from corral.control.pipeline import Services
from corral.deploy.planning import plan_figures
from corral.errors import ConfigError
from corral.hardware.detect import detect_local
from corral.ledger.db import open_ledger
from corral.paths import ledger_path
from corral.tune import result, store
from corral.tune.measure import Repeats
from corral.tune.search import Search, TuneRequest
from corral.tune.space import load_space
from corral.tune.workload import load_workload, parse_objective


def register(app: typer.Typer) -> None:
    app.command("tune")(tune_command)


def parse_duration(text: str) -> float:
    """`20m`, `90s`, `1h`, or seconds."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*(s|m|h)?\s*", text)
    if not match:
        raise ConfigError(f"--max-time takes a duration like 20m or 90s, not {text!r}")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


def tune_command(  # noqa: PLR0917  (a Typer command: one parameter per option)
    deployment: str = typer.Argument(..., help="deployment name from corral.yaml"),
    workload: str = typer.Option(
        "chat", "--workload", "-w", help="tiny, chat, long-context, or replay:FILE (a shape log)"
    ),
    slo: str = typer.Option("ttft_p95=2s,tpot_p95=60ms", help="thresholds and percentile"),
    space: Path | None = typer.Option(
        None, "--space", help="search space YAML (default: the engine's)"
    ),
    max_time: str = typer.Option("20m", "--max-time", help="budget for the whole search"),
    repeats: int = typer.Option(2, "--repeats", min=1, help="most sweeps per candidate"),
    spread: float = typer.Option(
        0.10, "--spread", min=0.0, help="stop repeating within this spread"
    ),
    apply: bool = typer.Option(
        False, "--apply", help="write the winner into corral.yaml (diff first)"
    ),
    plots: Path | None = typer.Option(
        None, "--plots", help="write goodput.png and pareto.png here"
    ),
    save: Path | None = typer.Option(None, "--save", help="also write the JSON result here"),
    config: Path | None = typer.Option(None, "--config", "-c", help="corral.yaml"),
) -> None:
    """Search engine settings for the workload: each candidate checked by the planner
    (skipped with the reason when it cannot fit), the deployment restarted with it through
    the one pipeline, the workload run at rising concurrency until the SLO breaks.

    Figure of merit: goodput (req/s meeting the SLO) at the best passing load, and decode
    tok/s at concurrency 1. A win inside the measured run-to-run spread is a tie. Every
    candidate lands in the ledger as it finishes: run the same command again after an
    interruption and finished candidates are not re-run. The deployment's configured
    settings are restored at the end, on the budget, and on Ctrl-C or SIGTERM.

    Example:  corral tune smollm2-135m-instruct --workload chat --max-time 20m
    """
    console = Console(stderr=True)
    cfg = config_from(config)
    dep = cfg.deployment(deployment)
    request = TuneRequest(deployment, load_workload(workload), parse_objective(slo),
                          load_space(space, dep.engine), Repeats(repeats, spread),
                          parse_duration(max_time))  # fmt: skip

    def say(kind: str, text: str) -> None:
        console.print(f"[bold]{kind:>9}[/] {text}", highlight=False)

    home = home_of(cfg)
    with open_ledger(ledger_path(home)) as ledger:
        services = Services(ledger, home, detect_local, say=say, planner=plan_figures)
        tune_id, outcomes, state = Search(cfg, request, services).run()
        verdict = result.verdict(outcomes)
        summary = {"tune_id": tune_id, "state": state, "workload": workload, "slo": slo,
                   "verdict": verdict, "candidates": outcomes}  # fmt: skip
        store.close_search(ledger, tune_id, state, summary)
    typer.echo(result.table(outcomes))
    typer.echo(f"\n{result.summary_line(verdict)} (search {tune_id}: {state})")
    if plots is not None:
        summary["plots"] = [str(p) for p in result.plot(outcomes, plots)]
    if save is not None:
        save.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if apply:
        _apply(config, deployment, outcomes, verdict, console)
    if state == "nothing-fits":
        console.print("nothing restarted: no candidate but `current` fits (the planner's "
                      "reason for each is in the table)")  # fmt: skip
        raise typer.Exit(2)


def _apply(config: Path | None, deployment: str, outcomes: list[dict[str, object]],
           verdict: dict[str, object], console: Console) -> None:  # fmt: skip
    if config is None:
        raise ConfigError("--apply needs --config: the built-in fleet has no file to write")
    winner = next((o for o in outcomes if o["name"] == verdict.get("winner")), None)
    if winner is None or verdict.get("tie") or winner["name"] == "current":
        console.print("--apply: nothing written (no winner beyond the spread)")
        return
    new, diff = result.apply_winner(config, deployment, winner)
    typer.echo(diff)
    config.write_text(new, encoding="utf-8")
    console.print(f"--apply: wrote the winner {winner['name']} into {config}")
