"""Which deployments use a model: configured ones (corral.yaml) and running ones (the ledger).

A deployment "uses" a model when its `model:` resolves to the same folder. Running runs
come from the ledger's `runs` table: a run counts as running while `ended_at` is NULL and
its state is not a terminal one. This is deliberately conservative (a run whose corral died
without recording its end still counts) because deleting weights under a live engine is
the worse mistake; the refusal names the run so an operator can check it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from corral.config import CorralConfig, StoreRoot
from corral.errors import StoreError
from corral.store.resolve import resolve_model

TERMINAL_STATES = ("stopped", "failed", "exited", "crashed", "ended")


@dataclass(frozen=True)
class RunningDeployment:
    run_id: int
    deployment: str
    model: str | None  # the model the run was started with, if its config_json says


def deployment_folders(config: CorralConfig, roots: Sequence[StoreRoot]) -> dict[Path, list[str]]:
    """Resolved model folder → names of the configured deployments that use it."""
    users: dict[Path, list[str]] = {}
    for dep in config.deployments:
        folder = _try_resolve(dep.model, roots)
        if folder is not None:
            users.setdefault(folder, []).append(dep.name)
    return users


def _try_resolve(model: str, roots: Sequence[StoreRoot]) -> Path | None:
    try:
        return resolve_model(model, roots).resolve()
    except StoreError:
        return None


def running_deployments(ledger: Path) -> list[RunningDeployment]:
    """Runs not yet ended, read from the ledger file (read-only; missing file → none)."""
    if not ledger.is_file():
        return []
    query = (
        "SELECT r.id, d.name, r.config_json FROM runs r "
        "JOIN deployments d ON d.id = r.deployment_id "
        "WHERE r.ended_at IS NULL AND r.state NOT IN (?, ?, ?, ?, ?)"
    )
    try:
        conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=10.0)
        try:
            rows = conn.execute(query, TERMINAL_STATES).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot read the runs in the ledger {ledger}: {exc}",
            hint="corral will not delete a model it cannot prove unused; fix the ledger first",
        ) from exc
    return [RunningDeployment(row[0], row[1], _model_of(row[2])) for row in rows]


def _model_of(config_json: str | None) -> str | None:
    try:
        data = json.loads(config_json or "null")
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict):
        model = data.get("model") or (data.get("deployment") or {}).get("model")
        return model if isinstance(model, str) else None
    return None


def running_users(
    folder: Path, ledger: Path, config: CorralConfig, roots: Sequence[StoreRoot]
) -> list[str]:
    """Running deployments whose model (as started, else as configured) is `folder`."""
    configured = {d.name: d.model for d in config.deployments}
    target = folder.resolve()
    users = []
    for run in running_deployments(ledger):
        model = run.model or configured.get(run.deployment)
        if model is not None and _try_resolve(model, roots) == target:
            users.append(f"{run.deployment} (run {run.run_id})")
    return users
