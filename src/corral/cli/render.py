"""`corral render DEPLOYMENT`: print the exact command corral would run for a deployment."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from corral.cli.common import config_from, home_of
from corral.cli.recipes import describe_recipe, print_known_issues
from corral.config import CorralConfig
from corral.control.recorder import command_text as shown
from corral.hardware.detect import detect_local
from corral.hosts.multinode import rank_command, ranks, require_spannable
from corral.recipes.fallback import Fallback
from corral.recipes.prepare import Prepared, forced_warning, prepare
from corral.runtime import LocalHost, runtime_for


def register(app: typer.Typer) -> None:
    app.command("render")(render)


def render(
    deployment: str = typer.Argument(..., help="deployment name from corral.yaml"),
    config: Path | None = typer.Option(None, "--config", "-c", help="corral.yaml"),
    docker: bool = typer.Option(
        False, "--docker", help="render as `docker run` whatever the deployment's runtime"
    ),
    force: bool = typer.Option(
        False, "--force", help="use the deployment's recipe even if it doesn't match the hardware"
    ),
) -> None:
    """Print the exact engine command for DEPLOYMENT (nothing is started).

    Example: `corral render gpt-oss-120b --config examples/fleet-pegasus.yaml --docker`
    prints the `docker run` the seed's GB10 deployment used. The recipe, the hardware it
    was chosen for and its known issues go to stderr; the command alone to stdout.
    """
    cfg = config_from(config)
    prepared = prepare(
        cfg, deployment, home_of(cfg), detect_local, force=force,
        runtime="docker" if docker else None,
    )  # fmt: skip
    explain(Console(stderr=True), prepared)
    require_spannable(prepared.deployment)
    if prepared.deployment.nodes:
        for heading, text in rank_texts(cfg, prepared):
            typer.echo(f"# {heading}\n{text}")
        return
    typer.echo(command_text(prepared))


def command_text(prepared: Prepared) -> str:
    """Exactly what `serve` and `deploy` run for it, through the same runtime (secret env
    values masked)."""
    runtime = runtime_for(prepared.launch.runtime, LocalHost(), supervised=False)
    return shown(runtime.command(prepared.launch, prepared.deployment.docker))


def rank_texts(cfg: CorralConfig, prepared: Prepared) -> list[tuple[str, str]]:
    """A multi-node deployment: (heading, exact command) per rank, in start order."""
    runtime = runtime_for(prepared.launch.runtime, LocalHost(), supervised=False)
    command = runtime.command(prepared.launch, prepared.deployment.docker)
    found = []
    for rank in ranks(command.argv, prepared.deployment, cfg):
        heading = f"rank {rank.index} on {rank.host} ({rank.role})"
        found.append((heading, shown(rank_command(command, rank))))
    return found


def explain(console: Console, prepared: Prepared) -> None:
    choice = prepared.choice
    console.print(
        f"# recipe {describe_recipe(choice.recipe)} for hardware {prepared.hardware_kind} "
        f"({prepared.hardware_source})",
        highlight=False,
    )
    if choice.forced:
        console.print("[red]# forced:[/] " + forced_warning(prepared), highlight=False)
    if choice.fallback is not None:
        explain_fallback_choice(console, choice.fallback)
    print_known_issues(console, choice.recipe.known_issues)


def explain_fallback_choice(console: Console, fallback: Fallback) -> None:
    """Say that the generic recipe was used, why, and what corral chose for it."""
    console.print(
        f"[yellow]# fallback:[/] generic recipe {fallback.generic}, because {fallback.reason}",
        highlight=False,
    )
    for note in fallback.notes:
        console.print(f"#   {note}", highlight=False)
    settings = ", ".join(f"{k}={v}" for k, v in fallback.settings.items())
    console.print(f"#   settings: {settings}", highlight=False)
