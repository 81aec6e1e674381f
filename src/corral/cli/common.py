"""Small helpers every command uses: load the config, print errors and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from corral.config import CorralConfig, load_config
from corral.errors import CorralError
from corral.paths import data_home


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
    """The config from `--config` (or the default fleet), with flag overrides applied."""
    return load_config(path, overrides={k: v for k, v in overrides.items() if v is not None})


def home_of(config: CorralConfig) -> Path:
    return config.home.expanduser() if config.home else data_home()
