"""`corral recipes list|show|validate|match`: the recipes corral knows, built-in and yours."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from corral.cli.common import config_from, home_of, print_json
from corral.hardware.detect import detect_local
from corral.recipes import fallback
from corral.recipes.flags import check_renders, checker_for
from corral.recipes.loader import (
    get_recipe,
    hardware_warnings,
    home_recipes_dir,
    known_hardware,
    load_recipes,
    parse_recipe,
)
from corral.recipes.match import generic_for, matching, mismatches, no_recipe_reason, tied
from corral.recipes.schema import KnownIssue, Recipe

recipes_app = typer.Typer(help="Recipes: what to run for a model on a kind of hardware.")
CONFIG = typer.Option(None, "--config", "-c", help="corral.yaml (its recipes_dir adds recipes)")


def register(app: typer.Typer) -> None:
    app.add_typer(recipes_app, name="recipes")


def _all(config: Path | None) -> dict[str, Recipe]:
    """Built-in recipes, `<CORRAL_HOME>/recipes`, then the config's recipes_dir; warnings
    for recipes that name hardware kinds corral does not know go to stderr."""
    cfg = config_from(config)
    recipes = load_recipes(cfg.recipes_dir, home_recipes_dir(home_of(cfg)))
    known = known_hardware()
    for recipe in recipes.values():
        for warning in hardware_warnings(recipe, known):
            typer.echo(f"warning: {warning}", err=True)
    return recipes


@recipes_app.command("list")
def list_recipes(config: Path | None = CONFIG) -> None:
    """List every recipe with the models, hardware and runtime it is for.

    Example: `corral recipes list`; add your own in `<CORRAL_HOME>/recipes/` or a folder
    named in corral.yaml (`recipes_dir: ~/corral-recipes`); one with a built-in's name
    replaces it.
    """
    table = Table("name", "models", "hardware", "engine", "runtime", "image / binary")
    for recipe in _all(config).values():
        table.add_row(
            recipe.name,
            "(fallback)" if recipe.generic else ", ".join(recipe.match.models),
            ", ".join(recipe.match.hardware),
            recipe.match.engine,
            recipe.runtime,
            launcher_of(recipe),
        )
    Console().print(table)


@recipes_app.command("show")
def show(
    name: str = typer.Argument(..., help="recipe name, e.g. gpt-oss-120b-gb10"),
    config: Path | None = CONFIG,
    json_out: bool = typer.Option(False, "--json", help="JSON instead of YAML"),
) -> None:
    """Print a recipe in full: command, capabilities, known issues, reference figures and
    the sources they came from (valid YAML: copy it into your recipes folder to adapt it).

    Example: `corral recipes show gpt-oss-120b-gb10 > ~/.local/share/corral/recipes/mine.yaml`.
    """
    recipe = get_recipe(_all(config), name)
    data = recipe.model_dump(mode="json", exclude_none=True)
    if json_out:
        print_json(data)
        return
    typer.echo("\n".join(f"# {line}" for line in summary_lines(recipe)))
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))


def summary_lines(recipe: Recipe) -> list[str]:
    """What a reader wants first: engine, parsers, context, parallelism, counts."""
    parsers = parser_names(recipe)
    return [
        f"{recipe.name}: {recipe.match.engine} via {recipe.runtime} ({launcher_of(recipe)})",
        f"tool parser: {parsers.get('tool', 'none')}, reasoning parser: "
        f"{parsers.get('reasoning', 'none')}, context: {recipe.capabilities.context_length}",
        f"parallel: tp {recipe.parallel.tensor_parallel_size}, pp "
        f"{recipe.parallel.pipeline_parallel_size}, nodes {recipe.parallel.nodes}",
        f"{len(recipe.known_issues)} known issues, {len(recipe.reference_figures)} reference "
        f"figures, {len(recipe.sources)} sources, {len(recipe.disagreements)} disagreements",
    ]


def parser_names(recipe: Recipe) -> dict[str, str]:
    """The tool and reasoning parsers the recipe's args set."""
    flags = {"--tool-call-parser": "tool", "--reasoning-parser": "reasoning"}
    args = recipe.args
    return {flags[a]: args[i + 1] for i, a in enumerate(args[:-1]) if a in flags}


@recipes_app.command("validate")
def validate(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="your recipe's YAML"),
) -> None:
    """Check your own recipe: the schema (a bad key is named with its file), the hardware
    kinds it names, and every flag it renders against the engine's own argument parser
    (vLLM's installed parser; llama-server's --help or captured list; SGLang's captured
    server arguments).

    Example: `corral recipes validate ~/corral-recipes/qwen3-32b-h100.yaml`.
    """
    recipe = parse_recipe(file.read_text("utf-8"), str(file))
    for warning in hardware_warnings(recipe, known_hardware()):
        typer.echo(f"warning: {warning}", err=True)
    checker = checker_for(recipe.match.engine)
    failed = False
    for hardware, runtime, report in check_renders(recipe, checker):
        for problem in report.problems:
            failed = True
            typer.echo(f"{file}: {hardware}/{runtime}: {problem}", err=True)
        for allowed in report.allowed:
            typer.echo(f"{hardware}/{runtime}: allowed {allowed}")
    if failed:
        raise typer.Exit(1)
    typer.echo(f"{recipe.name}: schema ok; flags ok against {checker.name}")


@recipes_app.command("match")
def match(
    model: str = typer.Argument(..., help="store name, e.g. openai/gpt-oss-120b"),
    hardware: str | None = typer.Option(
        None,
        "--hardware",
        help="hardware kind (gb10, h100, h200, rtx-pro-6000, cpu, gpu); default: this machine's",
    ),
    engine: str = typer.Option("vllm", "--engine", help="vllm, sglang or llama-server"),
    config: Path | None = CONFIG,
) -> None:
    """Which recipe a deployment of MODEL on HARDWARE would get, and why the others don't
    fit: the most specific wins (the model named exactly, then the fewest hardware kinds);
    a tie must be settled with `recipe:` in the deployment; no fit means the generic
    fallback for the engine and hardware.

    Example: `corral recipes match openai/gpt-oss-120b --hardware gb10`.
    """
    kind = hardware or detect_local().kind
    recipes = _all(config)
    console = Console()
    fits = matching(recipes, model, kind, engine)
    ties = tied(fits, model)
    shown = fits[:1] if len(ties) < 2 else ties
    if len(ties) > 1:
        console.print(
            f"[red]tie[/] {', '.join(r.name for r in ties)}: equally specific; the "
            f"deployment must say which (`recipe: {ties[0].name}`)",
            highlight=False,
        )
    elif fits:
        console.print(f"[green]chosen[/] {fits[0].name}: {fits[0].description}", highlight=False)
        print_known_issues(console, fits[0].known_issues)
    explain_others(console, recipes, shown, model=model, hardware=kind, engine=engine)
    if len(ties) > 1:
        raise typer.Exit(1)
    if not fits:
        explain_fallback(console, recipes, model, kind, engine)


def explain_others(
    console: Console,
    recipes: dict[str, Recipe],
    chosen: list[Recipe],
    *,
    model: str,
    hardware: str,
    engine: str,
) -> None:
    """One line per recipe that was not chosen: what it fits, or why not."""
    for recipe in recipes.values():
        if recipe in chosen or recipe.generic:
            continue
        problems = mismatches(recipe, model, hardware, engine)
        why = "; ".join(problems) if problems else "fits, but is less specific"
        console.print(f"  not {recipe.name}: {why}", highlight=False)


def explain_fallback(
    console: Console, recipes: dict[str, Recipe], model: str, hardware: str, engine: str
) -> None:
    reason = no_recipe_reason(recipes, model, hardware, engine)
    generic = generic_for(recipes, hardware, engine)
    if generic is None:
        console.print(f"{reason}; no generic {engine} recipe for {hardware}", highlight=False)
        raise typer.Exit(1)
    folder = Path(model).expanduser()
    if not folder.is_dir():
        console.print(
            f"[yellow]fallback[/] {generic.name}: {reason}. `corral render` fills in the "
            "context from the planner and the parsers from the model's config.json "
            "(give a model folder here to see them)",
            highlight=False,
        )
        return
    _, account = fallback.build(generic, hardware, folder, reason)
    console.print(f"[yellow]fallback[/] {generic.name}: {reason}", highlight=False)
    for note in account.notes:
        console.print(f"  {note}", highlight=False)


def print_known_issues(console: Console, issues: list[KnownIssue]) -> None:
    for issue in issues:
        console.print(
            f"  [yellow]known issue[/] {issue.id} ({issue.condition}): {issue.message}\n"
            f"    → {issue.action}",
            highlight=False,
        )


def launcher_of(recipe: Recipe) -> str:
    """The image, or the start of the process command."""
    if recipe.container is not None:
        return recipe.container.image
    return " ".join(recipe.process.command[:3]) if recipe.process else "?"


def describe_recipe(recipe: Recipe) -> str:
    where = recipe.container.image if recipe.container else "local process"
    return f"{recipe.name} ({recipe.runtime}: {where})"
