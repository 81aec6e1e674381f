"""corral's command line: thin Typer commands that parse, call one domain function, print.

Each command group lives in its own module here and exposes `register(app)`. `main()` turns
a `CorralError` into its message and exit code; anything else is a bug and keeps its
traceback (and re-raises under tests).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable

import typer
from rich.console import Console

from corral import __version__
from corral.children import EXIT_ON_SIGINT, install_sigterm
from corral.cli import common
from corral.errors import CorralError

_app = typer.Typer(
    name="corral",
    help=(
        "Run open-weight LLMs on your own machines: deploy with recipes that know the "
        "hardware, verify, benchmark, serve behind one OpenAI-compatible gateway, and "
        "write the deployment logbook."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"corral {__version__}")
        raise typer.Exit()


@_app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """corral: run open-weight LLMs on your own GPUs."""


# Which module registers each top-level command. `corral serve` imports only serve's module,
# not bench's or verify's (the openai SDK alone takes half a second to import), so a
# restarted serve routes sooner. tests/cli/test_lazy_commands.py keeps this table true.
COMMAND_MODULES: dict[str, str] = {
    "serve": "serve",
    "status": "serve",
    "models": "models",
    "hw": "hw",
    "recipes": "recipes",
    "render": "render",
    "bench": "bench",
    "keys": "keys",
    "verify": "verify",
    "plan": "plan",
    "deploy": "deploy",
    "logs": "deploy",
    "stop": "deploy",
    "report": "report",
    "hosts": "hosts",
    "tune": "tune",
}
_registered: set[str] = set()


def register(modules: Iterable[str]) -> typer.Typer:
    """Import and register the named command modules (once each); return the app."""
    for name in dict.fromkeys(modules):
        if name not in _registered:
            importlib.import_module(f"corral.cli.{name}").register(_app)
            _registered.add(name)
    return _app


def modules_for(argv: list[str]) -> list[str]:
    """The modules `argv` needs: its command's alone, or all of them for help and typos."""
    command = argv[1] if len(argv) > 1 else ""
    if command in COMMAND_MODULES:
        return [COMMAND_MODULES[command]]
    return list(COMMAND_MODULES.values())


def __getattr__(name: str) -> typer.Typer:
    """`from corral.cli import app` (tests, the docs generator) gets every command."""
    if name == "app":
        return register(COMMAND_MODULES.values())
    raise AttributeError(name)


def main() -> None:
    """Entry point: run the app; a CorralError becomes a message and its exit code."""
    err = Console(stderr=True)
    sigterm = install_sigterm()  # SIGTERM unwinds like Ctrl-C: children end with the command
    try:
        # Without standalone mode, click returns (not raises) a command's `typer.Exit` code.
        code = register(modules_for(sys.argv))(standalone_mode=False)
        if code == EXIT_ON_SIGINT:  # Typer turns Ctrl-C (and our SIGTERM) into 130
            err.print("terminated" if sigterm.seen else "interrupted")
            code = sigterm.exit_code()
        if isinstance(code, int) and code:
            sys.exit(code)
    except CorralError as exc:
        common.print_error(err, exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("terminated" if sigterm.seen else "interrupted")
        sys.exit(sigterm.exit_code())
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
