"""Recipes: the built-ins validate, user recipes load, matching and choosing behave."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from corral.cli import app as cli_app
from corral.config import Deployment, default_deployment
from corral.errors import RecipeError
from corral.recipes.loader import builtin_recipes, hardware_warnings, known_hardware, load_recipes
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


def test_the_builtins_cover_the_pairs_issue_18_asks_for() -> None:
    model_recipes = {r.name for r in builtin_recipes() if not r.generic}
    assert len(model_recipes) >= 12
    assert default_deployment().recipe is None  # chosen by hardware (cpu or a GPU kind)
    generic = {
        (r.match.engine, hw) for r in builtin_recipes() if r.generic for hw in r.match.hardware
    }
    for engine in ("vllm", "sglang", "llama-server"):
        assert (engine, "h100") in generic
    assert ("vllm", "cpu") in generic
    assert ("vllm", "gb10") in generic


def test_every_builtin_names_known_hardware_and_cites_sources() -> None:
    known = known_hardware()
    for recipe in builtin_recipes():
        assert hardware_warnings(recipe, known) == [], recipe.name
        assert recipe.sources, recipe.name


def test_gb10_recipe_carries_the_marlin_hang_and_the_community_image() -> None:
    recipe = load_recipes()["gpt-oss-120b-gb10"]
    assert recipe.container is not None
    assert recipe.container.image == "vllm-gb10"
    assert "eugr/spark-vllm-docker" in (recipe.container.image_source or "")
    hang = next(i for i in recipe.known_issues if i.id == "marlin-hang-sm12x")
    assert hang.log_pattern == "Using Marlin backend"


# (model, hardware, engine) → the recipe `corral recipes match` must pick.
INTENDED = [
    ("openai/gpt-oss-120b", "gb10", "vllm", "gpt-oss-120b-gb10"),
    ("openai/gpt-oss-120b@abc", "h100", "vllm", "gpt-oss-120b-h100"),
    ("openai/gpt-oss-120b", "h200", "vllm", "gpt-oss-120b-h100"),
    ("openai/gpt-oss-120b", "rtx-pro-6000", "vllm", "gpt-oss-120b-rtx-pro-6000"),
    ("openai/gpt-oss-20b", "gb10", "vllm", "gpt-oss-20b-gb10"),
    ("openai/gpt-oss-20b", "h100", "vllm", "gpt-oss-20b-h100"),
    ("openai/gpt-oss-20b", "h200", "vllm", "gpt-oss-20b-h100"),
    ("openai/gpt-oss-20b", "rtx-pro-6000", "vllm", "gpt-oss-20b-rtx-pro-6000"),
    ("openai/gpt-oss-20b", "cpu", "vllm", "gpt-oss-20b-cpu"),
    ("zai-org/GLM-4.7-Flash", "gb10", "vllm", "glm-4.7-flash-gb10"),
    ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "gb10", "vllm", "qwen3-coder-30b-a3b-gb10"),
    ("Qwen/Qwen3-Coder-30B-A3B-Instruct-FP8", "gb10", "vllm", "qwen3-coder-30b-a3b-gb10"),
    ("QuantTrio/Qwen3-235B-A22B-Instruct-2507-AWQ", "gb10", "vllm", "qwen3-235b-a22b-awq-2x-gb10"),
    ("nvidia/Llama-3.3-70B-Instruct-FP8", "h100", "vllm", "llama-3.3-70b-fp8-h100"),
    ("nvidia/Llama-3.3-70B-Instruct-FP8", "h200", "vllm", "llama-3.3-70b-fp8-h200"),
    (
        "nvidia/Llama-3.3-70B-Instruct-NVFP4",
        "rtx-pro-6000",
        "vllm",
        "llama-3.3-70b-nvfp4-rtx-pro-6000",
    ),
    ("google/gemma-4-26B-A4B-it", "gb10", "vllm", "gemma-4-26b-a4b-gb10"),
    ("RedHatAI/gemma-4-26B-A4B-it-NVFP4", "gb10", "vllm", "gemma-4-26b-a4b-nvfp4-gb10"),
    ("Qwen/Qwen3-Embedding-0.6B", "h100", "vllm", "qwen3-embedding-0.6b-vllm"),
    ("Qwen/Qwen3-Embedding-0.6B", "h200", "sglang", "qwen3-embedding-0.6b-sglang"),
    ("Qwen/Qwen3-Embedding-0.6B-GGUF", "cpu", "llama-server", "qwen3-embedding-0.6b-llama-server"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "cpu", "vllm", "smollm2-135m-cpu"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "h100", "vllm", "smollm2-135m-h100"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "h200", "vllm", "smollm2-135m-h200"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "rtx-pro-6000", "vllm", "smollm2-135m-rtx-pro-6000"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "gb10", "vllm", "smollm2-135m-gb10"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "gpu", "vllm", "smollm2-135m-cuda"),
    ("smollm2", "cpu", "llama-server", "smollm2-135m-llama-server-cpu"),
    ("smollm2", "h200", "llama-server", "smollm2-135m-llama-server-h200"),
    ("ggml-org/gpt-oss-120b-GGUF", "gb10", "llama-server", "gpt-oss-120b-llama-server-gb10"),
]


@pytest.mark.parametrize(("model", "hardware", "engine", "expected"), INTENDED)
def test_matching_picks_the_intended_recipe(
    model: str, hardware: str, engine: str, expected: str
) -> None:
    deployment = Deployment(name="d", model=model, engine=engine)  # type: ignore[arg-type]
    assert choose(load_recipes(), deployment, hardware).recipe.name == expected


@pytest.mark.parametrize(("model", "hardware", "engine", "expected"), INTENDED)
def test_recipes_match_cli_picks_the_intended_recipe(
    model: str, hardware: str, engine: str, expected: str
) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["recipes", "match", model, "--hardware", hardware, "--engine", engine],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    assert f"chosen {expected}:" in result.output


def test_every_builtin_model_recipe_is_intended_somewhere() -> None:
    """A new built-in recipe needs a row in INTENDED (the pair it is for), so that the
    table keeps covering every recipe."""
    intended = {row[3] for row in INTENDED}
    missing = sorted({r.name for r in builtin_recipes() if not r.generic} - intended)
    assert missing == [], f"add a row to INTENDED for: {missing}"
    assert intended <= {r.name for r in builtin_recipes()}


def test_no_recipe_for_gpt_oss_120b_on_cpu_falls_back_with_the_reason() -> None:
    assert matching(load_recipes(), "openai/gpt-oss-120b", "cpu", "vllm") == []
    choice = choose(load_recipes(), GB10_DEPLOYMENT.model_copy(update={"recipe": None}), "cpu")
    assert choice.fallback is not None
    assert choice.recipe.name == "generic-vllm-cpu"
    assert "no recipe for 'openai/gpt-oss-120b' on 'cpu'" in choice.fallback.reason
    assert "gpt-oss-120b-gb10: hardware 'cpu' is not one of ['gb10']" in choice.fallback.reason


def test_no_generic_recipe_is_a_clear_error() -> None:
    recipes = {n: r for n, r in load_recipes().items() if not r.generic}
    deployment = GB10_DEPLOYMENT.model_copy(update={"recipe": None})
    with pytest.raises(RecipeError, match="no generic vllm recipe for 'cpu' either"):
        choose(recipes, deployment, "cpu")


def test_two_equally_good_recipes_are_a_named_tie(tmp_path: Path) -> None:
    base = load_recipes()["gpt-oss-120b-h100"].model_dump(mode="json", exclude_none=True)
    _write(tmp_path, "twin", {**base, "name": "gpt-oss-120b-h100-twin"})
    deployment = GB10_DEPLOYMENT.model_copy(update={"recipe": None})
    with pytest.raises(RecipeError, match="gpt-oss-120b-h100, gpt-oss-120b-h100-twin fit") as err:
        choose(load_recipes(tmp_path), deployment, "h100")
    assert "recipe: gpt-oss-120b-h100" in (err.value.hint or "")
    named = deployment.model_copy(update={"recipe": "gpt-oss-120b-h100-twin"})
    assert choose(load_recipes(tmp_path), named, "h100").recipe.name == "gpt-oss-120b-h100-twin"


def test_an_exact_model_name_beats_a_pattern(tmp_path: Path) -> None:
    base = load_recipes()["gpt-oss-120b-h100"].model_dump(mode="json", exclude_none=True)
    pattern = {**base["match"], "models": ["openai/*"]}
    _write(tmp_path, "any-openai", {**base, "name": "any-openai-h100", "match": pattern})
    fits = matching(load_recipes(tmp_path), "openai/gpt-oss-120b", "h100", "vllm")
    assert [r.name for r in fits] == ["gpt-oss-120b-h100", "any-openai-h100"]


def test_a_recipe_for_unknown_hardware_is_warned_about_with_the_kinds() -> None:
    recipe = load_recipes()["gpt-oss-120b-h100"]
    odd = recipe.model_copy(
        update={"match": recipe.match.model_copy(update={"hardware": ["b200"]})}
    )
    [warning] = hardware_warnings(odd, known_hardware())
    assert "matches no hardware kind corral knows: ['b200']" in warning
    assert "gb10, gpu, h100, h200, rtx-pro-6000" in warning


def test_home_recipes_folder_extends_and_config_folder_overrides(tmp_path: Path) -> None:
    base = load_recipes()["smollm2-135m-cpu"].model_dump(mode="json", exclude_none=True)
    home, mine = tmp_path / "home-recipes", tmp_path / "mine"
    home.mkdir()
    mine.mkdir()
    _write(home, "a", {**base, "name": "home-only", "description": "home"})
    _write(home, "b", {**base, "description": "from home"})
    _write(mine, "c", {**base, "description": "from config"})
    recipes = load_recipes(mine, home)
    assert recipes["home-only"].description == "home"
    assert recipes["smollm2-135m-cpu"].description == "from config"
    assert "home-only" not in load_recipes(mine, tmp_path / "absent")


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


def test_recipes_cli_validate_names_file_key_and_flags(tmp_path: Path) -> None:
    base = load_recipes()["gpt-oss-120b-h100"].model_dump(mode="json", exclude_none=True)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**base, "name": "mine"}))
    done = _corral("recipes", "validate", str(good))
    assert done.returncode == 0, done.stderr
    assert "flags ok against vLLM 0.32.0 argument parser" in done.stdout
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        yaml.safe_dump({**base, "name": "typo", "args": [*base["args"], "--max-num-seq", "8"]})
    )
    done = _corral("recipes", "validate", str(typo))
    assert done.returncode == 1
    assert f"{typo}: h100/docker: --max-num-seq abbreviates a vLLM flag" in done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        yaml.safe_dump({**base, "name": "broken", "defaults": {"max_model_len": "long"}})
    )
    done = _corral("recipes", "validate", str(broken))
    assert done.returncode == 1
    assert f"invalid recipe {broken}" in done.stderr
    assert "defaults.max_model_len" in done.stderr


def test_recipes_cli_match_explains_tie_and_fallback(tmp_path: Path) -> None:
    matched = _corral("recipes", "match", "google/gemma-4-26B-A4B-it", "--hardware", "gb10")
    assert matched.returncode == 0
    assert "chosen gemma-4-26b-a4b-gb10" in matched.stdout
    assert "gemma4-mm-budget-2048" in matched.stdout
    assert "not gemma-4-26b-a4b-nvfp4-gb10: model 'google/gemma-4-26B-A4B-it' is not one of" in (
        matched.stdout
    )
    fallback = _corral("recipes", "match", "mistralai/Mistral-Small", "--hardware", "h200")
    assert fallback.returncode == 0
    assert "fallback generic-vllm-gpu: no recipe for 'mistralai/Mistral-Small'" in fallback.stdout


def test_recipes_cli_list_show_match() -> None:
    listed = _corral("recipes", "list")
    assert listed.returncode == 0
    assert "gpt-oss-120b-gb10" in listed.stdout
    shown = _corral("recipes", "show", "gpt-oss-120b-gb10")
    assert Recipe.model_validate(yaml.safe_load(shown.stdout)).name == "gpt-oss-120b-gb10"
    assert "# gpt-oss-120b-gb10: vllm via docker (vllm-gb10)" in shown.stdout
    matched = _corral("recipes", "match", "openai/gpt-oss-120b", "--hardware", "gb10")
    assert "chosen gpt-oss-120b-gb10" in matched.stdout
    assert "marlin-hang-sm12x" in matched.stdout
    none = _corral("recipes", "match", "openai/gpt-oss-120b", "--hardware", "b200")
    assert none.returncode == 1
    assert "no generic vllm recipe for b200" in none.stdout
    missing = _corral("recipes", "show", "nope")
    assert missing.returncode == 1
    assert "no recipe named 'nope'" in missing.stderr


def test_every_log_pattern_is_a_regex() -> None:
    for recipe in builtin_recipes():
        for issue in recipe.known_issues:
            if issue.log_pattern:
                re.compile(issue.log_pattern)


@pytest.mark.parametrize(
    ("recipe", "issue", "log", "expected"),
    [
        ("gemma-4-26b-a4b-gb10", "gemma4-mm-budget-2048",
         "gemma-4-26b-a4b-bf16-gb10-vllm-0.20.0-fail-max-num-batched-tokens-2048.log", True),
        ("gemma-4-26b-a4b-gb10", "gemma4-mm-budget-2048",
         "gemma-4-26b-a4b-bf16-gb10-vllm-0.20.0.log", False),
        ("generic-vllm-gb10", "gb10-low-tier-batch",
         "gemma-4-26b-a4b-bf16-gb10-vllm-0.20.0-fail-max-num-batched-tokens-2048.log", True),
        ("gemma-4-26b-a4b-nvfp4-gb10", "gemma4-mm-budget",
         "gemma-4-26b-a4b-nvfp4-gb10-vllm-0.25.1.log", True),
        ("gpt-oss-120b-rtx-pro-6000", "marlin-moe-sm120",
         "gpt-oss-120b-vllm-0.25.1-marlin.log", True),
    ],
)  # fmt: skip
def test_known_issue_patterns_match_the_real_logs(
    shared_fixtures: Path, recipe: str, issue: str, log: str, expected: bool
) -> None:
    """The GB10 captures: the Gemma 4 start that died on the 2048 batch default, the one
    that worked with 4096, vLLM 0.25.1 raising the default by itself, the MARLIN line."""
    pattern = next(i for i in load_recipes()[recipe].known_issues if i.id == issue).log_pattern
    text = (shared_fixtures / "logs" / "vllm" / log).read_text(errors="replace")
    assert bool(re.search(pattern or "(?!)", text)) is expected


def test_recipes_show_prints_sources_issues_and_figures() -> None:
    shown = _corral("recipes", "show", "gemma-4-26b-a4b-gb10")
    assert shown.returncode == 0
    data = yaml.safe_load(shown.stdout)
    assert any("gemma-4-26B-A4B-it.yaml" in s["url"] for s in data["sources"])
    assert {i["id"] for i in data["known_issues"]} >= {"gemma4-mm-budget-2048"}
    assert any(f["value"] == 177440 for f in data["reference_figures"])
    assert data["disagreements"][0]["choice"] == "131072"
    assert "# tool parser: gemma4, reasoning parser: gemma4, context: 131072" in shown.stdout
