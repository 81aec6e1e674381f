"""Match recipes to a (model, hardware kind, engine), and choose one for a deployment.

A recipe named by a deployment must match the hardware unless forced; its known issues are
returned either way, so the CLI shows them whenever a recipe is chosen.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.config import Deployment
from corral.errors import RecipeError
from corral.recipes.schema import Recipe
from corral.store.resolve import is_path_name


def model_id(model: str) -> str:
    """The store name a deployment's `model` refers to.

    'openai/gpt-oss-120b@rev' → 'openai/gpt-oss-120b'; a path inside a Hugging Face cache
    ('.../models--openai--gpt-oss-120b/snapshots/x') → 'openai/gpt-oss-120b'; another path
    → its folder name.
    """
    found = re.search(r"models--([^/]+?)--([^/]+)", model)
    if found:
        return f"{found.group(1)}/{found.group(2)}"
    if is_path_name(model):
        return model.rstrip("/").rsplit("/", 1)[-1]
    return model.split("@", 1)[0]


def folder_config(model: str) -> dict[str, Any]:
    """The config.json of a model given as a folder path; empty for a store name or a
    folder without a readable one."""
    if not is_path_name(model):
        return {}
    try:
        data = json.loads((Path(model).expanduser() / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def matches_identity(recipe: Recipe, model: str) -> bool:
    """A folder whose config.json has every value the recipe's `match.config` names: the
    model itself, whatever the folder is called (`/models/model`)."""
    wanted = recipe.match.config
    found = folder_config(model) if wanted else {}
    return bool(found) and all(found.get(key) == value for key, value in wanted.items())


def matches_model(recipe: Recipe, model: str) -> bool:
    name = model_id(model).lower()
    if any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in recipe.match.models):
        return True
    return matches_identity(recipe, model)


@dataclass
class Choice:
    recipe: Recipe
    forced: bool = False
    mismatches: list[str] = field(default_factory=list)


def mismatches(recipe: Recipe, model: str, hardware: str, engine: str) -> list[str]:
    """Why `recipe` does not fit; empty when it does."""
    found = []
    if not matches_model(recipe, model):
        found.append(f"model {model_id(model)!r} is not one of {recipe.match.models}")
    if hardware not in recipe.match.hardware:
        found.append(f"hardware {hardware!r} is not one of {recipe.match.hardware}")
    if engine != recipe.match.engine:
        found.append(f"engine {engine!r} is not {recipe.match.engine!r}")
    return found


def matching(recipes: dict[str, Recipe], model: str, hardware: str, engine: str) -> list[Recipe]:
    """Recipes that fit, most specific first (fewest hardware kinds listed)."""
    fits = [r for r in recipes.values() if not mismatches(r, model, hardware, engine)]
    return sorted(fits, key=lambda r: (len(r.match.hardware), r.name))


def choose(
    recipes: dict[str, Recipe], deployment: Deployment, hardware: str, *, force: bool = False
) -> Choice:
    """The recipe for `deployment` on `hardware` (a kind from `corral hw`)."""
    if deployment.recipe is not None:
        if deployment.recipe not in recipes:
            raise RecipeError(
                f"deployment {deployment.name!r} names recipe {deployment.recipe!r}, "
                f"which does not exist (recipes: {', '.join(sorted(recipes))})"
            )
        recipe = recipes[deployment.recipe]
        problems = mismatches(recipe, deployment.model, hardware, deployment.engine)
        if problems and not force:
            raise RecipeError(
                f"recipe {recipe.name!r} does not fit deployment {deployment.name!r}: "
                + "; ".join(problems),
                hint="pick a matching recipe (`corral recipes match`) or pass --force",
            )
        return Choice(recipe, forced=bool(problems), mismatches=problems)
    fits = matching(recipes, deployment.model, hardware, deployment.engine)
    if not fits:
        raise RecipeError(
            f"no recipe for {model_id(deployment.model)!r} on {hardware!r} with "
            f"{deployment.engine}",
            hint="name one with `recipe:` in the deployment (and --force), or write one "
            "(docs/recipes.md)",
        )
    return Choice(fits[0])
