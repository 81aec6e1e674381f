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
from corral.errors import RecipeError
from corral.hardware.info import HardwareInfo
from corral.paths import models_dir
from corral.recipes.loader import home_recipes_dir, load_recipes
from corral.recipes.match import Choice, choose
from corral.recipes.render import EngineLaunch, ModelLocation, locate_model, render
from corral.recipes.schema import Match, Process, Recipe
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


def hardware_of(
    config: CorralConfig, deployment: Deployment, detect: Detector
) -> tuple[str, str, HardwareInfo | None]:
    """(kind, where it came from, the detected machine): the host's `hardware:` in
    corral.yaml (nothing detected), else detection."""
    host = config.hosts.get(deployment.host)
    if host is not None and host.hardware:
        return host.hardware, f"hosts.{deployment.host}.hardware in corral.yaml", None
    info = detect()
    if deployment.host not in ("local", "localhost"):
        return info.kind, f"detected here (host {deployment.host!r} names no hardware)", info
    return info.kind, "detected on this machine", info


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2])


def check_driver(recipe_cuda: str | None, recipe: str, info: HardwareInfo | None) -> None:
    """Refuse a recipe whose engine build needs a newer CUDA than the host's driver runs."""
    if recipe_cuda is None or info is None or not info.gpus or not info.cuda_version:
        return
    if _version(info.cuda_version) >= _version(recipe_cuda):
        return
    raise RecipeError(
        f"recipe {recipe!r} runs an engine built for CUDA {recipe_cuda}, but this host's "
        f"driver {info.driver_version or '(version unknown)'} supports CUDA "
        f"{info.cuda_version} at most",
        hint=f"update the NVIDIA driver to one that supports CUDA {recipe_cuda} (580 or "
        "newer for 13.0), or use an engine build for your CUDA",
    )


def model_location(
    deployment: Deployment, engine: str, config: CorralConfig, home: Path
) -> ModelLocation:
    """Where the model is: a GGUF file for llama-server, else the model folder."""
    roots = store_roots(config, home)
    if engine == "llama-server":
        return ModelLocation(locate_gguf(deployment.model, roots, home), None)
    return locate_model(deployment.model, roots, models_dir(home))


def forced_warning(prepared: Prepared) -> str:
    """Why the forced recipe does not fit, and what its own known issue says that costs."""
    text = "; ".join(prepared.choice.mismatches)
    costs = [i.message for i in prepared.choice.recipe.known_issues if "forced" in i.condition]
    return text + "".join(f"; cost: {cost}" for cost in costs)


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
    kind, source, info = hardware_of(config, deployment, detect)
    # The model first: a misspelt name gets "did you mean", not "no recipe for" it.
    location = model_location(deployment, deployment.engine, config, home)
    recipes = load_recipes(config.recipes_dir, home_recipes_dir(home))
    choice = choose(recipes, deployment, kind, force=force, model_dir=location.path)
    check_driver(choice.recipe.cuda, choice.recipe.name, info)
    if choice.recipe.match.engine != deployment.engine:  # the recipe's engine reads the model
        location = model_location(deployment, choice.recipe.match.engine, config, home)
    launch = render(deployment, choice.recipe, location, runtime=runtime)
    return Prepared(deployment, kind, source, choice, launch)
