"""docs/cli.md is the commands' own `--help`: regenerate it (scripts/cli_reference.py)
whenever a command changes, or this fails."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "cli_reference", REPO / "scripts" / "cli_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cli_reference"] = module
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_matches_the_help() -> None:
    rendered = _script().render()
    current = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == rendered, "docs/cli.md is out of date: run `python scripts/cli_reference.py`"


def test_the_reference_covers_every_command_and_names_no_machine_path() -> None:
    rendered = _script().render()
    for heading in (
        "## corral serve",
        "### corral models pull",
        "### corral keys list",
        "### corral bench compare",
        "## corral verify",
        "## corral plan",
    ):
        assert heading in rendered
    assert "--allow-different-workloads" in rendered
    assert "--all" in rendered
    assert "the default root (/models)" not in rendered  # `<data home>` once vanished here
