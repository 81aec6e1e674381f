"""`corral recipes list|show|match`: the recipes corral knows, built-in and your own."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from corral.cli.common import config_from, print_json
from corral.hardware.detect import detect_local
from corral.recipes.loader import get_recipe, load_recipes
from corral.recipes.match import mismatches
from corral.recipes.schema import KnownIssue, Recipe

recipes_app = typer.Typer(help="Recipes: what to run for a model on a kind of hardware.")
CONFIG = typer.Option(None, "--config", "-c", help="corral.yaml (its recipes_dir adds recipes)")


def register(app: typer.Typer) -> None:
    app.add_typer(recipes_app, name="recipes")


@recipes_app.command("list")
def list_recipes(config: Path | None = CONFIG) -> None:
    """List every recipe with the models, hardware and runtime it is for.

    Example: `corral recipes list`; add your own by naming a folder in corral.yaml
    (`recipes_dir: ~/corral-recipes`).
    """
    table = Table("name", "models", "hardware", "runtime", "image / binary")
    for recipe in load_recipes(config_from(config).recipes_dir).values():
        table.add_row(
            recipe.name,
            ", ".join(recipe.match.models),
            ", ".join(recipe.match.hardware),
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
    """Print a recipe in full (valid YAML: copy it into your recipes_dir to adapt it).

    Example: `corral recipes show gpt-oss-120b-gb10 > my-recipes/gb10-fp8.yaml`.
    """
    recipe = get_recipe(load_recipes(config_from(config).recipes_dir), name)
    data = recipe.model_dump(mode="json", exclude_none=True)
    if json_out:
        print_json(data)
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))


@recipes_app.command("match")
def match(
    model: str = typer.Argument(..., help="store name, e.g. openai/gpt-oss-120b"),
    hardware: str | None = typer.Option(
        None,
        "--hardware",
        help="hardware kind (gb10, h100, h200, rtx-pro-6000, cpu); default: this machine's",
    ),
    engine: str = typer.Option("vllm", "--engine"),
    config: Path | None = CONFIG,
) -> None:
    """Which recipes fit a model on a kind of hardware, and why the others don't.

    Example: `corral recipes match openai/gpt-oss-120b --hardware gb10`.
    """
    kind = hardware or detect_local().kind
    recipes = load_recipes(config_from(config).recipes_dir)
    console = Console()
    found = False
    for recipe in recipes.values():
        problems = mismatches(recipe, model, kind, engine)
        if not problems:
            found = True
            console.print(f"[green]fits[/] {recipe.name}: {recipe.description}", highlight=False)
            print_known_issues(console, recipe.known_issues)
    if not found:
        console.print(f"no recipe fits {model} on {kind} with {engine}", highlight=False)
        raise typer.Exit(1)


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
