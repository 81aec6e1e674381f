"""From a deployment name to an exact launch: pick the hardware, the recipe, the model path.

`prepare` is what `corral render` and `corral deploy` both call, so what render prints is
what deploy runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from corral.config import CorralConfig, Deployment
from corral.hardware.info import HardwareInfo
from corral.paths import models_dir
from corral.recipes.loader import load_recipes
from corral.recipes.match import Choice, choose
from corral.recipes.render import EngineLaunch, ModelLocation, locate_model, render
from corral.recipes.schema import Match, Process, Recipe
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


ENDPOINT_RECIPE = Recipe(
    name="unmanaged-endpoint",
    description="an OpenAI-compatible endpoint corral routes to but never starts or stops",
    match=Match(models=["*"], hardware=["*"]),
    runtime="process",
    process=Process(command=["(not launched by corral)"]),
)


def endpoint_prepared(deployment: Deployment) -> Prepared:
    """An unmanaged endpoint: nothing to resolve or render; its address is the launch."""
    url = deployment.endpoint or ""
    parsed = urlsplit(url)
    served = deployment.endpoint_model or deployment.name
    launch = EngineLaunch(
        deployment=deployment.name, recipe=ENDPOINT_RECIPE.name, runtime="endpoint", argv=(),
        env=(), model=ModelLocation(Path(url), None), engine_model=served, served_name=served,
        host=parsed.hostname or "", port=parsed.port or 443, url=url,
    )  # fmt: skip
    return Prepared(deployment, "remote", "an unmanaged endpoint", Choice(ENDPOINT_RECIPE),
                    launch)  # fmt: skip


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
    if deployment.endpoint is not None:
        return endpoint_prepared(deployment)
    kind, source = hardware_kind(config, deployment, detect)
    recipes = load_recipes(config.recipes_dir)
    choice = choose(recipes, deployment, kind, force=force)
    location = locate_model(deployment.model, store_roots(config, home), models_dir(home))
    launch = render(deployment, choice.recipe, location, runtime=runtime)
    return Prepared(deployment, kind, source, choice, launch)
