"""Load recipes: the built-in ones, then the user's folder (a user recipe with a built-in's
name replaces it, so an operator can fix a recipe without touching corral)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml
from pydantic import ValidationError

from corral.errors import RecipeError
from corral.recipes.schema import Recipe

BUILTIN_PACKAGE = "corral.recipes"


def parse_recipe(text: str, source: str) -> Recipe:
    """Validate one recipe's YAML; RecipeError names the file and every bad key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {source} is not valid YAML: {exc}") from None
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise RecipeError(
            f"invalid recipe {source}:\n{problems}",
            hint="docs/recipes.md lists every field; `corral recipes show NAME` prints a valid one",
        ) from None


def _yaml_files(folder: Traversable) -> list[Traversable]:
    return sorted(
        (f for f in folder.iterdir() if f.name.endswith((".yaml", ".yml"))), key=lambda f: f.name
    )


def builtin_recipes() -> list[Recipe]:
    folder = resources.files(BUILTIN_PACKAGE).joinpath("builtin")
    return [parse_recipe(f.read_text("utf-8"), f"builtin/{f.name}") for f in _yaml_files(folder)]


def user_recipes(folder: Path) -> list[Recipe]:
    if not folder.is_dir():
        raise RecipeError(
            f"recipes_dir {folder} is not a folder",
            hint="create it, or fix `recipes_dir` in corral.yaml",
        )
    return [parse_recipe(p.read_text("utf-8"), str(p)) for p in sorted(folder.glob("*.y*ml"))]


def load_recipes(user_dir: Path | None = None) -> dict[str, Recipe]:
    """All recipes by name: built-in first, then the user's (which may replace built-ins)."""
    recipes = {r.name: r for r in builtin_recipes()}
    if user_dir is not None:
        for recipe in user_recipes(user_dir.expanduser()):
            recipes[recipe.name] = recipe
    return recipes


def get_recipe(recipes: dict[str, Recipe], name: str) -> Recipe:
    if name not in recipes:
        raise RecipeError(
            f"no recipe named {name!r} (recipes: {', '.join(sorted(recipes))})",
            hint="`corral recipes list` shows them; add your own under recipes_dir",
        )
    return recipes[name]
