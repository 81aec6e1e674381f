"""Where corral keeps its files: one data directory, `CORRAL_HOME` or the XDG default."""

from __future__ import annotations

import os
from pathlib import Path


def data_home(env: dict[str, str] | None = None) -> Path:
    """$CORRAL_HOME, else $XDG_DATA_HOME/corral, else ~/.local/share/corral."""
    env = dict(os.environ) if env is None else env
    if env.get("CORRAL_HOME"):
        return Path(env["CORRAL_HOME"]).expanduser()
    xdg = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "corral"


def models_dir(home: Path) -> Path:
    """The default store root: where `corral models pull` puts models."""
    return home / "models"


def runs_dir(home: Path) -> Path:
    """Per-run engine log files."""
    return home / "runs"


def ledger_path(home: Path) -> Path:
    """The SQLite ledger."""
    return home / "ledger.sqlite3"
