"""Match recipes to a (model, hardware kind, engine), and choose one for a deployment.

A recipe named by a deployment must match the hardware unless forced; its known issues are
returned either way, so the CLI shows them whenever a recipe is chosen. Among recipes that
fit, the most specific wins (the model named exactly, then the fewest hardware kinds); two
equally specific ones are a tie the deployment must settle with `recipe:`. A model no
recipe fits falls back to the generic recipe of its engine and hardware (fallback.py).
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
from corral.recipes import fallback
from corral.recipes.fallback import Fallback
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
    fallback: Fallback | None = None


def mismatches(recipe: Recipe, model: str, hardware: str, engine: str) -> list[str]:
    """Why `recipe` does not fit; empty when it does."""
    found = []
    if recipe.generic:
        found.append("generic: used only when no model recipe fits")
    elif not matches_model(recipe, model):
        found.append(f"model {model_id(model)!r} is not one of {recipe.match.models}")
    if hardware not in recipe.match.hardware:
        found.append(f"hardware {hardware!r} is not one of {recipe.match.hardware}")
    if engine != recipe.match.engine:
        found.append(f"engine {engine!r} is not {recipe.match.engine!r}")
    return found


def specificity(recipe: Recipe, model: str) -> tuple[int, int]:
    """Lower is more specific: a model named exactly beats a pattern, then fewer hardware
    kinds beat more."""
    name = model_id(model).lower()
    exact = any(name == pattern.lower() for pattern in recipe.match.models)
    return (0 if exact else 1, len(recipe.match.hardware))


def matching(recipes: dict[str, Recipe], model: str, hardware: str, engine: str) -> list[Recipe]:
    """Recipes that fit, most specific first."""
    fits = [r for r in recipes.values() if not mismatches(r, model, hardware, engine)]
    return sorted(fits, key=lambda r: (specificity(r, model), r.name))


def tied(fits: list[Recipe], model: str) -> list[Recipe]:
    """The recipes as specific as the first one (more than one: a tie to be named)."""
    if not fits:
        return []
    best = specificity(fits[0], model)
    return [r for r in fits if specificity(r, model) == best]


def generic_for(recipes: dict[str, Recipe], hardware: str, engine: str) -> Recipe | None:
    """The generic recipe for this engine and hardware, if any (most specific first)."""
    found = [
        r
        for r in recipes.values()
        if r.generic and hardware in r.match.hardware and r.match.engine == engine
    ]
    return min(found, key=lambda r: (len(r.match.hardware), r.name), default=None)


def no_recipe_reason(recipes: dict[str, Recipe], model: str, hardware: str, engine: str) -> str:
    """Why no model recipe fits: say which recipes name this model and what they are for."""
    same_model = [r for r in recipes.values() if not r.generic and matches_model(r, model)]
    head = f"no recipe for {model_id(model)!r} on {hardware!r} with {engine}"
    if not same_model:
        return head + " (no recipe names this model)"
    others = "; ".join(
        f"{r.name}: {', '.join(mismatches(r, model, hardware, engine))}" for r in same_model
    )
    return f"{head} ({others})"


def _named(
    recipes: dict[str, Recipe], deployment: Deployment, hardware: str, force: bool
) -> Choice:
    name = deployment.recipe or ""
    if name not in recipes:
        raise RecipeError(
            f"deployment {deployment.name!r} names recipe {name!r}, "
            f"which does not exist (recipes: {', '.join(sorted(recipes))})"
        )
    recipe = recipes[name]
    problems = [
        p
        for p in mismatches(recipe, deployment.model, hardware, deployment.engine)
        if not p.startswith("generic")
    ]
    if problems and not force:
        raise RecipeError(
            f"recipe {recipe.name!r} does not fit deployment {deployment.name!r}: "
            + "; ".join(problems),
            hint="pick a matching recipe (`corral recipes match`) or pass --force",
        )
    return Choice(recipe, forced=bool(problems), mismatches=problems)


def tie_error(deployment: Deployment, hardware: str, ties: list[Recipe]) -> RecipeError:
    names = ", ".join(r.name for r in ties)
    return RecipeError(
        f"recipes {names} fit deployment {deployment.name!r} on {hardware!r} equally well",
        hint=f"say which in corral.yaml: `recipe: {ties[0].name}` under the deployment",
    )


def choose(
    recipes: dict[str, Recipe],
    deployment: Deployment,
    hardware: str,
    *,
    force: bool = False,
    model_dir: Path | None = None,
) -> Choice:
    """The recipe for `deployment` on `hardware` (a kind from `corral hw`): the one it
    names, else the most specific that fits, else the generic one for its engine and
    hardware filled in for the model at `model_dir` (see fallback.py)."""
    if deployment.recipe is not None:
        return _named(recipes, deployment, hardware, force)
    fits = matching(recipes, deployment.model, hardware, deployment.engine)
    ties = tied(fits, deployment.model)
    if len(ties) > 1:
        raise tie_error(deployment, hardware, ties)
    if fits:
        return Choice(fits[0])
    reason = no_recipe_reason(recipes, deployment.model, hardware, deployment.engine)
    generic = generic_for(recipes, hardware, deployment.engine)
    if generic is None:
        raise RecipeError(
            reason + f"; no generic {deployment.engine} recipe for {hardware!r} either",
            hint="name one with `recipe:` in the deployment (and --force), or write one "
            "(docs/recipes.md)",
        )
    recipe, account = fallback.build(generic, hardware, model_dir, reason)
    return Choice(recipe, fallback=account)
