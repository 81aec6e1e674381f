"""`corral.cli.COMMAND_MODULES` names the module of every top-level command, and no other.

`main()` imports only the invoked command's module (so `corral serve` skips the openai SDK);
a command missing from the table would vanish, one named wrongly would not register.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import typer

from corral import cli


def _names_registered_by(module: str) -> set[str]:
    app = typer.Typer()
    importlib.import_module(f"corral.cli.{module}").register(app)
    commands = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    groups = {g.name for g in app.registered_groups if g.name}
    return commands | groups


def test_every_module_registers_exactly_the_commands_the_table_gives_it() -> None:
    for module in set(cli.COMMAND_MODULES.values()):
        expected = {name for name, owner in cli.COMMAND_MODULES.items() if owner == module}
        assert _names_registered_by(module) == expected, module


def test_a_command_needs_only_its_module_and_help_needs_all() -> None:
    assert cli.modules_for(["corral", "logs", "x"]) == ["deploy"]
    assert set(cli.modules_for(["corral", "--help"])) == set(cli.COMMAND_MODULES.values())
    assert set(cli.modules_for(["corral", "servee"])) == set(cli.COMMAND_MODULES.values())


def test_serve_does_not_import_the_openai_sdk() -> None:
    probe = "import sys, corral.cli as c; c.register(['serve']); print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
