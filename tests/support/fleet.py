"""Fleets for control-plane tests: recipes that run the scripted engine (or a script that
fails like vLLM) as a local process, on a fake model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from corral.config import CorralConfig, Deployment
from tests.support.scripted import SCRIPTED

SCRIPTED_RECIPE: dict[str, Any] = {
    "name": "scripted-cpu",
    "description": "the scripted engine standing in for vLLM",
    "match": {"models": ["fake-model"], "hardware": ["cpu"]},
    "runtime": "process",
    "process": {"command": ["{python}", str(SCRIPTED)]},
    "args": ["--model", "{served_name}", "--host", "{host}", "--port", "{port}", "--tokens", "8"],
    "served_name": "{served_name}",
    "known_issues": [
        {"id": "fake-issue", "condition": "always", "message": "it is fake", "action": "none"}
    ],
}


def script_recipe(name: str, script: Path) -> dict[str, Any]:
    """A recipe whose engine is a Python script (its output parsed as vLLM's)."""
    return {
        "name": name,
        "description": "a script that behaves like a failing vLLM",
        "match": {"models": ["fake-model"], "hardware": ["cpu"]},
        "runtime": "process",
        "process": {"command": ["{python}", "-u", str(script)]},
        "served_name": "{served_name}",
    }


def fake_model(tmp_path: Path) -> Path:
    model = tmp_path / "fake-model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\0" * 4096)
    return model


def fleet_config(
    tmp_path: Path, deployments: list[Deployment], recipes: list[dict[str, Any]] | None = None
) -> CorralConfig:
    folder = tmp_path / "recipes"
    folder.mkdir(exist_ok=True)
    for recipe in [SCRIPTED_RECIPE, *(recipes or [])]:
        (folder / f"{recipe['name']}.yaml").write_text(yaml.safe_dump(recipe))
    return CorralConfig(home=tmp_path, recipes_dir=folder, deployments=deployments)


def scripted(name: str, tmp_path: Path, **fields: Any) -> Deployment:
    """A deployment of the scripted engine on the fake model (a free port unless given)."""
    from tests.support.vllm import free_port

    base: dict[str, Any] = {"recipe": "scripted-cpu", "port": free_port(), "startup_timeout": 30}
    return Deployment(name=name, model=str(fake_model(tmp_path)), **(base | fields))
