"""Small helpers every command uses: load the config, print errors and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from corral.config import CorralConfig, load_config
from corral.control.ondemand import idle_stop_warnings
from corral.errors import CorralError
from corral.ledger.db import open_ledger
from corral.paths import data_home, ledger_path
from corral.recipes.loader import home_recipes_dir, load_recipes


def print_error(console: Console, exc: CorralError) -> None:
    console.print(f"[bold red]error:[/] {exc.message}", highlight=False, markup=True)
    log_tail = getattr(exc, "log_tail", None)
    if log_tail:
        console.print("last engine log lines:", highlight=False)
        for line in log_tail:
            console.print("  " + line, highlight=False, markup=False)
    if exc.hint:
        console.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))  # noqa: T201  (the command's output)


def config_from(path: Path | None, **overrides: Any) -> CorralConfig:
    """The config from `--config` (or the default fleet), with flag overrides applied; its
    warnings (an on-demand `idle_stop` shorter than the start) go to stderr."""
    config = load_config(path, overrides={k: v for k, v in overrides.items() if v is not None})
    for warning in load_warnings(config):
        typer.echo(f"warning: {warning}", err=True)
    return config


def load_warnings(config: CorralConfig) -> list[str]:
    """What is valid but unwise in `config`; reads the ledger (if there is one) for past
    start times and the recipes for their stated ones."""
    if not any(d.on_demand and d.idle_stop for d in config.deployments):
        return []
    try:
        recipes = load_recipes(config.recipes_dir, home_recipes_dir(home_of(config)))
        ledger_file = ledger_path(home_of(config))
        if not ledger_file.exists():
            return idle_stop_warnings(config, None, recipes)
        with open_ledger(ledger_file) as ledger:
            return idle_stop_warnings(config, ledger, recipes)
    except CorralError:
        return []  # the command itself reports a bad recipes_dir or ledger


def home_of(config: CorralConfig) -> Path:
    return config.home.expanduser() if config.home else data_home()
