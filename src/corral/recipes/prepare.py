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
from corral.recipes.loader import home_recipes_dir, load_recipes
from corral.recipes.match import Choice, choose
from corral.recipes.render import EngineLaunch, locate_model, render
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
    recipes = load_recipes(config.recipes_dir, home_recipes_dir(home))
    location = locate_model(deployment.model, store_roots(config, home), models_dir(home))
    choice = choose(recipes, deployment, kind, force=force, model_dir=location.path)
    launch = render(deployment, choice.recipe, location, runtime=runtime)
    return Prepared(deployment, kind, source, choice, launch)
