"""Recipes: the built-ins validate, user recipes load, matching and choosing behave."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from corral.config import Deployment, default_deployment
from corral.errors import RecipeError
from corral.recipes.loader import builtin_recipes, load_recipes
from corral.recipes.match import choose, matching, model_id
from corral.recipes.schema import Recipe

BUILTIN = Path(__file__).resolve().parents[2] / "src" / "corral" / "recipes" / "builtin"
GB10_DEPLOYMENT = Deployment(
    name="gpt-oss-120b", model="openai/gpt-oss-120b", recipe="gpt-oss-120b-gb10"
)


@pytest.mark.parametrize("path", sorted(BUILTIN.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_builtin_recipe_validates_against_the_json_schema(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    jsonschema.validate(data, Recipe.model_json_schema())
    recipe = Recipe.model_validate(data)
    assert recipe.name == path.stem
    assert all(issue.action for issue in recipe.known_issues)
    assert all(figure.source for figure in recipe.reference_figures)


def test_the_builtins_are_the_four_the_issue_asks_for() -> None:
    names = {r.name for r in builtin_recipes()}
    assert names >= {
        "gpt-oss-120b-gb10",
        "gpt-oss-120b-h100",
        "gpt-oss-20b-rtx-pro-6000",
        "smollm2-135m-cpu",
        # the default model on GPUs (issue 19)
        "smollm2-135m-h100",
        "smollm2-135m-h200",
        "smollm2-135m-rtx-pro-6000",
        "smollm2-135m-gb10",
        "smollm2-135m-cuda",
        # issue 14: llama-server
        "smollm2-135m-llama-server-cpu",
        "smollm2-135m-llama-server-h200",
        "gpt-oss-120b-llama-server-gb10",
    }
    assert default_deployment().recipe is None  # chosen by hardware (cpu or a GPU kind)


def test_gb10_recipe_carries_the_marlin_hang_and_the_community_image() -> None:
    recipe = load_recipes()["gpt-oss-120b-gb10"]
    assert recipe.container is not None
    assert recipe.container.image == "vllm-gb10"
    assert "eugr/spark-vllm-docker" in (recipe.container.image_source or "")
    hang = next(i for i in recipe.known_issues if i.id == "marlin-hang-sm12x")
    assert hang.log_pattern == "Using Marlin backend"


@pytest.mark.parametrize(
    ("model", "hardware", "expected"),
    [
        ("openai/gpt-oss-120b", "gb10", "gpt-oss-120b-gb10"),
        ("openai/gpt-oss-120b@abc", "h100", "gpt-oss-120b-h100"),
        ("openai/gpt-oss-120b", "h200", "gpt-oss-120b-h100"),
        ("openai/gpt-oss-20b", "rtx-pro-6000", "gpt-oss-20b-rtx-pro-6000"),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "cpu", "smollm2-135m-cpu"),
    ],
)
def test_matching(model: str, hardware: str, expected: str) -> None:
    assert matching(load_recipes(), model, hardware, "vllm")[0].name == expected


def test_no_match_for_gpt_oss_on_cpu() -> None:
    assert matching(load_recipes(), "openai/gpt-oss-120b", "cpu", "vllm") == []
    with pytest.raises(RecipeError, match="no recipe for 'openai/gpt-oss-120b' on 'cpu'"):
        choose(load_recipes(), GB10_DEPLOYMENT.model_copy(update={"recipe": None}), "cpu")


def test_a_recipe_for_other_hardware_needs_force() -> None:
    with pytest.raises(RecipeError, match="hardware 'cpu' is not one of") as err:
        choose(load_recipes(), GB10_DEPLOYMENT, "cpu")
    assert "--force" in str(err.value)
    forced = choose(load_recipes(), GB10_DEPLOYMENT, "cpu", force=True)
    assert forced.forced
    assert forced.recipe.name == "gpt-oss-120b-gb10"
    assert forced.recipe.known_issues  # shown by the CLI when chosen
    assert not choose(load_recipes(), GB10_DEPLOYMENT, "gb10").forced


def test_model_id_from_names_and_paths() -> None:
    assert model_id("openai/gpt-oss-120b@b5c9") == "openai/gpt-oss-120b"
    assert model_id("/mnt/models/models--openai--gpt-oss-120b/snapshots/b5c9") == (
        "openai/gpt-oss-120b"
    )
    assert model_id("/srv/my-finetune/") == "my-finetune"


def _write(folder: Path, name: str, data: dict[str, object]) -> None:
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))


def test_user_recipes_add_and_replace(tmp_path: Path) -> None:
    base = load_recipes()["smollm2-135m-cpu"].model_dump(mode="json", exclude_none=True)
    _write(tmp_path, "mine", {**base, "name": "my-smollm2", "description": "mine"})
    _write(tmp_path, "override", {**base, "description": "patched"})
    recipes = load_recipes(tmp_path)
    assert recipes["my-smollm2"].description == "mine"
    assert recipes["smollm2-135m-cpu"].description == "patched"


def test_bad_user_recipe_names_the_file_and_key(tmp_path: Path) -> None:
    base = load_recipes()["smollm2-135m-cpu"].model_dump(mode="json", exclude_none=True)
    _write(tmp_path, "bad", {**base, "name": "bad", "runtme": "process"})
    with pytest.raises(RecipeError, match=r"bad\.yaml:\n  runtme: Extra inputs"):
        load_recipes(tmp_path)


def test_unknown_placeholder_is_rejected(tmp_path: Path) -> None:
    base = load_recipes()["smollm2-135m-cpu"].model_dump(mode="json", exclude_none=True)
    _write(tmp_path, "typo", {**base, "name": "typo", "args": ["--port", "{prot}"]})
    with pytest.raises(RecipeError, match="unknown placeholders \\['prot'\\]"):
        load_recipes(tmp_path)


def test_missing_recipes_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="is not a folder"):
        load_recipes(tmp_path / "nope")


def _corral(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_recipes_cli_list_show_match() -> None:
    listed = _corral("recipes", "list")
    assert listed.returncode == 0
    assert "gpt-oss-120b-gb10" in listed.stdout
    shown = _corral("recipes", "show", "gpt-oss-120b-gb10")
    assert Recipe.model_validate(yaml.safe_load(shown.stdout)).name == "gpt-oss-120b-gb10"
    matched = _corral("recipes", "match", "openai/gpt-oss-120b", "--hardware", "gb10")
    assert "fits gpt-oss-120b-gb10" in matched.stdout
    assert "marlin-hang-sm12x" in matched.stdout
    none = _corral("recipes", "match", "openai/gpt-oss-120b", "--hardware", "cpu")
    assert none.returncode == 1
    missing = _corral("recipes", "show", "nope")
    assert missing.returncode == 1
    assert "no recipe named 'nope'" in missing.stderr
