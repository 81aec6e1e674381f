"""From a deployment name to an exact launch: pick the hardware, the recipe, the model path.

`prepare` is what `corral render` and `corral deploy` both call, so what render prints is
what deploy runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from corral.config import CorralConfig, Deployment
from corral.hardware.info import HardwareInfo
from corral.paths import models_dir
from corral.recipes.loader import load_recipes
from corral.recipes.match import Choice, choose
from corral.recipes.render import EngineLaunch, ModelLocation, locate_model, render
from corral.store.gguf import locate_gguf
from corral.store.roots import store_roots

Detector = Callable[[], HardwareInfo]


@dataclass(frozen=True)
class Prepared:
    deployment: Deployment
    hardware_kind: str
    hardware_source: str
    choice: Choice
    launch: EngineLaunch


def hardware_kind(
    config: CorralConfig, deployment: Deployment, detect: Detector
) -> tuple[str, str]:
    """(kind, where it came from): the host's `hardware:` in corral.yaml, else detection."""
    host = config.hosts.get(deployment.host)
    if host is not None and host.hardware:
        return host.hardware, f"hosts.{deployment.host}.hardware in corral.yaml"
    if deployment.host not in ("local", "localhost"):
        return detect().kind, f"detected here (host {deployment.host!r} names no hardware)"
    return detect().kind, "detected on this machine"


def model_location(
    deployment: Deployment, engine: str, config: CorralConfig, home: Path
) -> ModelLocation:
    """Where the model is: a GGUF file for llama-server, else the model folder."""
    roots = store_roots(config, home)
    if engine == "llama-server":
        return ModelLocation(locate_gguf(deployment.model, roots, home), None)
    return locate_model(deployment.model, roots, models_dir(home))


def prepare(
    config: CorralConfig,
    name: str,
    home: Path,
    detect: Detector,
    *,
    force: bool = False,
    runtime: str | None = None,
) -> Prepared:
    """Resolve deployment `name` to its recipe and exact command (nothing is launched)."""
    deployment = config.deployment(name)
    kind, source = hardware_kind(config, deployment, detect)
    # The model first: a misspelt name gets "did you mean", not "no recipe for" it.
    location = model_location(deployment, deployment.engine, config, home)
    recipes = load_recipes(config.recipes_dir)
    choice = choose(recipes, deployment, kind, force=force)
    if choice.recipe.match.engine != deployment.engine:  # the recipe's engine reads the model
        location = model_location(deployment, choice.recipe.match.engine, config, home)
    launch = render(deployment, choice.recipe, location, runtime=runtime)
    return Prepared(deployment, kind, source, choice, launch)
