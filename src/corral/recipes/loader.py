"""Load recipes: the built-in ones, then the user's folder (a user recipe with a built-in's
name replaces it, so an operator can fix a recipe without touching corral)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml
from pydantic import ValidationError

from corral.errors import RecipeError
from corral.hardware.detect import load_kinds
from corral.hardware.profiles import profile_names
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


def load_recipes(user_dir: Path | None = None, home_dir: Path | None = None) -> dict[str, Recipe]:
    """All recipes by name: built-in first, then `<CORRAL_HOME>/recipes` if it exists, then
    the config's `recipes_dir` (which must exist); a later one with a name replaces it."""
    recipes = {r.name: r for r in builtin_recipes()}
    folders = [home_dir] if home_dir is not None and home_dir.is_dir() else []
    folders += [user_dir.expanduser()] if user_dir is not None else []
    for folder in folders:
        for recipe in user_recipes(folder):
            recipes[recipe.name] = recipe
    return recipes


def home_recipes_dir(home: Path) -> Path:
    """Where a user's recipes live without any config: `<CORRAL_HOME>/recipes`."""
    return home / "recipes"


def known_hardware() -> set[str]:
    """Hardware kinds corral knows: the profiles, kinds.yaml's names, and the generic `gpu`."""
    return set(profile_names()) | {entry["kind"] for entry in load_kinds()} | {"cpu", "gpu"}


def hardware_warnings(recipe: Recipe, known: set[str]) -> list[str]:
    """A warning when a recipe names hardware kinds corral does not know."""
    unknown = sorted(set(recipe.match.hardware) - known)
    if not unknown:
        return []
    matches = "matches no hardware kind" if len(unknown) == len(recipe.match.hardware) else "names"
    return [
        f"recipe {recipe.name} {matches} corral knows: {unknown} "
        f"(known kinds: {', '.join(sorted(known))})"
    ]


def get_recipe(recipes: dict[str, Recipe], name: str) -> Recipe:
    if name not in recipes:
        raise RecipeError(
            f"no recipe named {name!r} (recipes: {', '.join(sorted(recipes))})",
            hint="`corral recipes list` shows them; add your own under recipes_dir",
        )
    return recipes[name]
