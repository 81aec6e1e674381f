"""`corral keys ...`: API keys for the gateway, stored hashed in the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from corral.cli import access
from corral.cli.common import config_from, home_of, print_json
from corral.gateway.keystore import KeyStore, StoredKey
from corral.ledger.db import Ledger, open_ledger
from corral.paths import ledger_path

keys_app = typer.Typer(
    help="API keys for the gateway: create (shown once), list, revoke. "
    "Keys are stored as sha256 in the ledger; a running gateway sees changes within a second."
)

ConfigOpt = typer.Option(None, "--config", "-c", help="corral.yaml (for the data directory)")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def _ledger(config_path: Path | None) -> Ledger:
    return open_ledger(ledger_path(home_of(config_from(config_path))))


def _split(models: list[str]) -> list[str]:
    return [m.strip() for item in models for m in item.split(",") if m.strip()]


@keys_app.command("create")
def create(
    name: str = typer.Option(..., "--name", "-n", help="a name to tell the key by (unique)"),
    models: list[str] = typer.Option(
        [], "--models", "-m", help="names, aliases or roles it may use (repeat or comma-list)"
    ),
    config: Path | None = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Create a key and print it ONCE (only its hash is stored).

    Example: corral keys create --name ci --models default,architect
    """
    with _ledger(config) as ledger:
        created = KeyStore(ledger).create(name, _split(models))
    if as_json:
        print_json({"name": created.name, "key": created.key, "models": list(created.models)})
        return
    scope = ", ".join(created.models) or "all models"
    typer.echo(f"key {created.name!r} (may use: {scope}):\n\n  {created.key}\n")
    typer.echo("Store it now: corral keeps only its hash and cannot show it again.")


@keys_app.command("list")
def list_keys(
    config: Path | None = ConfigOpt,
    show_all: bool = typer.Option(
        False, "--all", "-a", "--revoked", help="include revoked keys (with when they were)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List active keys (name, first characters, scope, dates); --all adds revoked ones.

    When every key is revoked the gateway is locked (it answers 401 to everyone), and this
    says so. Example: corral keys list --all
    """
    with _ledger(config) as ledger:
        store = KeyStore(ledger)
        keys = store.listed(include_revoked=show_all)
        active, revoked = store.counts()
    if as_json:
        print_json([k.__dict__ for k in keys])
        return
    _print_keys(keys)
    note = access.keys_note(active, revoked, shown_revoked=show_all)
    if note:
        Console(stderr=True).print(note, highlight=False)


def _print_keys(keys: list[StoredKey]) -> None:
    if not keys:
        return
    table = Table("name", "key starts", "may use", "created", "revoked")
    for key in keys:
        table.add_row(
            key.name, key.prefix + "…", ", ".join(key.models) or "all",
            _when(key.created_at), _when(key.revoked_at),
        )  # fmt: skip
    Console().print(table)


@keys_app.command("revoke")
def revoke(
    name: str = typer.Argument(..., help="the key's name"),
    config: Path | None = ConfigOpt,
) -> None:
    """Revoke a key by name; a running gateway refuses it within a second.

    Example: corral keys revoke ci
    """
    with _ledger(config) as ledger:
        KeyStore(ledger).revoke(name)
    typer.echo(f"revoked key {name!r}")


def _when(stamp: float | None) -> str:
    if stamp is None:
        return ""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
