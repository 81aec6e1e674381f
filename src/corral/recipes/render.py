"""Turn (deployment, recipe) into the exact engine command: argv, environment, model path.

This is pure: nothing is launched. The docker runtime wraps the result in `docker run`
(runtime/docker.py); the process runtime runs `argv` with `env` added.

Model paths: a store name `org/name[@revision]` is found in the Hugging Face cache layout
under the store roots (`<root>/models--org--name/snapshots/<revision>`); without a revision
the root's `refs/main` says which snapshot. A root that can't be read from here (another
host's NFS mount) is fine when the revision is pinned: the path is computed, not checked.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from corral.config import Deployment, StoreRoot
from corral.engines.llama_server import find_binary
from corral.errors import RecipeError, StoreError
from corral.recipes.schema import Container, Recipe, template_names
from corral.store import hf_layout
from corral.store.resolve import is_path_name, resolve_model


@dataclass(frozen=True)
class ModelLocation:
    """Where the model is on the host, and which store root holds it (None: a bare path)."""

    path: Path
    root: Path | None


@dataclass(frozen=True)
class EngineLaunch:
    """A rendered deployment: the engine's argv and env, and how to containerize it."""

    deployment: str
    recipe: str
    runtime: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    model: ModelLocation
    engine_model: str
    served_name: str
    host: str
    port: int
    container: Container | None = None
    container_name: str | None = None
    mounts: tuple[tuple[str, str], ...] = field(default=())
    url: str | None = None
    """An unmanaged endpoint's own address (then host and port are only informative)."""

    @property
    def base_url(self) -> str:
        if self.url is not None:
            return self.url.rstrip("/").removesuffix("/v1")
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        return f"http://{host}:{self.port}"


def locate_model(model: str, roots: list[StoreRoot], default_root: Path) -> ModelLocation:
    """The host path of `model` (a store name or a path) and the root that holds it.

    Found through the store's resolver; a pinned `org/name@revision` that no root here
    holds (another host's NFS mount) is placed by the layout, unchecked.
    """
    root_paths = [r.path.expanduser() for r in roots] or [default_root]
    try:
        path = resolve_model(model, root_paths)
    except StoreError:
        repo_id, _, pinned = model.partition("@")
        if is_path_name(model) or not pinned:
            raise
        path = hf_layout.snapshot_dir(root_paths[0], repo_id, pinned)
    owner = next((r for r in root_paths if path.is_relative_to(r.absolute())), None)
    return ModelLocation(path, owner.absolute() if owner else None)


def _fill(template: str, values: dict[str, str]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise RecipeError(f"cannot fill recipe template {template!r}: {exc}") from None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def has_flashinfer(runtime: str) -> bool:
    """Whether the engine will find FlashInfer: in corral's own interpreter for a local
    process (the recipes' `{python}`); a container image is taken to ship it (the stock
    vLLM images do)."""
    return runtime == "docker" or importlib.util.find_spec("flashinfer") is not None


def template_values(
    deployment: Deployment,
    recipe: Recipe,
    engine_model: str,
    python: str,
    *,
    flashinfer: bool = True,
) -> dict[str, str]:
    kv = deployment.kv_cache_gib or recipe.defaults.kv_cache_gib
    utilization = deployment.gpu_memory_utilization or recipe.defaults.gpu_memory_utilization
    values = {
        "model": engine_model,
        "served_name": deployment.name,
        "host": deployment.bind or recipe.defaults.host,
        "port": str(deployment.port or recipe.defaults.port),
        "max_model_len": str(deployment.max_model_len or recipe.defaults.max_model_len),
        "kv_cache_gib": _number(kv) if kv else "",
        "gpu_memory_utilization": _number(utilization) if utilization else "",
        "python": python,
        "flashinfer_sampler": "1" if flashinfer else "0",
    }
    if "llama_server" in template_names(recipe):  # looked up only when used: it may fail
        values["llama_server"] = str(find_binary())
    return values


def served_name_of(args: list[str], engine_model: str) -> str:
    """The model name the engine answers to: --served-model-name, else the model argument."""
    for i, arg in enumerate(args):
        if arg == "--served-model-name" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--served-model-name="):
            return arg.split("=", 1)[1]
    return engine_model


def _container_model(location: ModelLocation, mount: str) -> tuple[str, tuple[str, str]]:
    """The model path inside the container and the (host, container) mount that makes it."""
    if location.root is not None:
        inside = Path(mount) / location.path.relative_to(location.root)
        return str(inside), (str(location.root), mount)
    return f"{mount}/{location.path.name}", (str(location.path.parent), mount)


def render(
    deployment: Deployment,
    recipe: Recipe,
    location: ModelLocation,
    *,
    runtime: str | None = None,
    python: str = sys.executable,
) -> EngineLaunch:
    """The exact engine command for `deployment` with `recipe`, for `runtime` (default:
    the deployment's)."""
    runtime = runtime or deployment.runtime
    mounts: tuple[tuple[str, str], ...] = ()
    if runtime == "docker":
        if recipe.container is None:
            raise RecipeError(
                f"recipe {recipe.name!r} has no container section, so it can't run in docker",
                hint="use runtime: process, or a recipe written for docker",
            )
        engine_model, mount = _container_model(location, recipe.container.model_mount)
        mounts = (mount,)
        head = recipe.container.command
    else:
        if recipe.process is None:
            raise RecipeError(
                f"recipe {recipe.name!r} has no process section, so it can't run as a process",
                hint="use runtime: docker, or a recipe written for local processes",
            )
        engine_model, head = str(location.path), recipe.process.command
    values = template_values(
        deployment, recipe, engine_model, python, flashinfer=has_flashinfer(runtime)
    )
    args = [_fill(a, values) for a in [*recipe.args]] + list(deployment.args)
    env = {k: _fill(v, values) for k, v in recipe.env.items()} | deployment.env
    return EngineLaunch(
        deployment=deployment.name,
        recipe=recipe.name,
        runtime=runtime,
        argv=tuple(_fill(a, values) for a in head) + tuple(args),
        env=tuple(env.items()),
        model=location,
        engine_model=engine_model,
        served_name=_fill(recipe.served_name, values)
        if recipe.served_name
        else served_name_of(args, engine_model),
        host=values["host"],
        port=int(values["port"]),
        container=recipe.container if runtime == "docker" else None,
        container_name=(deployment.docker.container_name or deployment.name)
        if runtime == "docker"
        else None,
        mounts=mounts,
    )


def shell_lines(
    argv: tuple[str, ...] | list[str],
    env: tuple[tuple[str, str], ...] = (),
    breaks: tuple[int, ...] = (),
) -> str:
    """A copy-pasteable command: one option (with its values) per line, env first; also a
    new line before the argv positions in `breaks` (e.g. docker's image)."""
    words = [f"{k}={shlex.quote(v)}" for k, v in env]
    starts = {len(words) + b for b in breaks}
    words += [shlex.quote(a) for a in argv]
    lines: list[list[str]] = [[]]
    for position, word in enumerate(words):
        if lines[-1] and (word.startswith("-") or position in starts):
            lines.append([])
        lines[-1].append(word)
    return " \\\n  ".join(" ".join(line) for line in lines)
