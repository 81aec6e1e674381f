"""`corral keys ...`: API keys for the gateway, stored hashed in the ledger."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from corral.cli import access
from corral.cli.common import config_from, home_of, print_json
from corral.config import KeyLimits
from corral.errors import ConfigError
from corral.gateway.keystore import CreatedKey, KeyStore, StoredKey
from corral.gateway.usage import LedgerUsage
from corral.ledger.db import Ledger, open_ledger
from corral.paths import ledger_path

keys_app = typer.Typer(
    help="API keys for the gateway: create (shown once, optionally with limits and an "
    "expiry), list, rotate, revoke, usage. Keys are stored as sha256 in the ledger; a "
    "running gateway sees changes within a second."
)

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

ConfigOpt = typer.Option(None, "--config", "-c", help="corral.yaml (for the data directory)")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def _ledger(config_path: Path | None) -> Ledger:
    return open_ledger(ledger_path(home_of(config_from(config_path))))


def _split(models: list[str]) -> list[str]:
    return [m.strip() for item in models for m in item.split(",") if m.strip()]


def parse_duration(text: str, option: str) -> float:
    """`90s`, `15m`, `12h`, `30d`, `2w` (or plain seconds) as seconds; ConfigError otherwise."""
    value, unit = text.strip()[:-1], text.strip()[-1:]
    if unit.isdigit():
        value, unit = text.strip(), "s"
    try:
        seconds = float(value) * DURATION_UNITS[unit.lower()]
    except (KeyError, ValueError):
        raise ConfigError(
            f"{option} {text!r} is not a duration", hint="write e.g. 90s, 15m, 12h, 30d or 2w"
        ) from None
    if seconds <= 0:
        raise ConfigError(f"{option} must be positive, not {text!r}")
    return seconds


def _print_created(created: CreatedKey, as_json: bool) -> None:
    if as_json:
        print_json({"name": created.name, "key": created.key, "models": list(created.models),
                    "limits": created.limits.model_dump(exclude_none=True),
                    "expires_at": created.expires_at})  # fmt: skip
        return
    scope = ", ".join(created.models) or "all models"
    typer.echo(f"key {created.name!r} (may use: {scope}; limits: {_limits(created.limits)}"
               f"{'; expires ' + _when(created.expires_at) if created.expires_at else ''}):"
               f"\n\n  {created.key}\n")  # fmt: skip
    typer.echo("Store it now: corral keeps only its hash and cannot show it again.")


def _limits(limits: KeyLimits) -> str:
    names = {"requests_per_minute": "req/min", "tokens_per_minute": "tok/min",
             "tokens_per_day": "tok/day", "concurrent": "concurrent"}  # fmt: skip
    set_ = limits.model_dump(exclude_none=True)
    return ", ".join(f"{value} {names[key]}" for key, value in set_.items()) or "none"


@keys_app.command("create")
def create(  # noqa: PLR0917  (a Typer command: one parameter per option)
    name: str = typer.Option(..., "--name", "-n", help="a name to tell the key by (unique)"),
    models: list[str] = typer.Option(
        [], "--models", "-m", help="names, aliases or roles it may use (repeat or comma-list)"
    ),
    rpm: int | None = typer.Option(None, "--rpm", min=1, help="requests per minute"),
    tpm: int | None = typer.Option(
        None, "--tpm", min=1, help="tokens (prompt + answer) per minute"
    ),
    tpd: int | None = typer.Option(None, "--tpd", min=1, help="tokens per day"),
    concurrent: int | None = typer.Option(None, "--concurrent", min=1, help="requests at once"),
    expires: str | None = typer.Option(None, "--expires", help="lifetime, e.g. 12h, 30d, 2w"),
    config: Path | None = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Create a key and print it ONCE (only its hash is stored).

    Over a limit the gateway answers 429 with Retry-After (a stream in flight finishes).

    Example: corral keys create --name ci --models default --rpm 60 --tpd 2000000 --expires 30d
    """
    limits = KeyLimits(requests_per_minute=rpm, tokens_per_minute=tpm, tokens_per_day=tpd,
                       concurrent=concurrent)  # fmt: skip
    lifetime = parse_duration(expires, "--expires") if expires else None
    with _ledger(config) as ledger:
        created = KeyStore(ledger).create(name, _split(models), limits=limits, expires_in=lifetime)
    _print_created(created, as_json)


@keys_app.command("rotate")
def rotate(
    name: str = typer.Argument(..., help="the key's name"),
    overlap: str = typer.Option(
        "1h", "--overlap", help="how long the old key keeps working (e.g. 10m, 1h, 1d)"
    ),
    config: Path | None = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Replace a key: a new one (same name, scope, limits) is printed ONCE; the old one
    keeps working for the overlap window, then stops.

    Example: corral keys rotate ci --overlap 2h
    """
    with _ledger(config) as ledger:
        created = KeyStore(ledger).rotate(name, parse_duration(overlap, "--overlap"))
    _print_created(created, as_json)


@keys_app.command("usage")
def usage(
    since: str = typer.Option("24h", "--since", help="how far back, e.g. 1h, 24h, 30d"),
    key: str | None = typer.Option(None, "--key", help="only this key"),
    config: Path | None = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Requests and tokens per key and model, as the gateway recorded them (written
    every few seconds while it runs).

    Example: corral keys usage --since 7d --key ci
    """
    start = time.time() - parse_duration(since, "--since")
    with _ledger(config) as ledger:
        rows = LedgerUsage(ledger).summary(start, key)
    if as_json:
        print_json([row.__dict__ for row in rows])
        return
    table = Table("key", "model", "requests", "errors", "refused (429)", "prompt tok",
                  "answer tok", title=f"usage since {_when(start)}")  # fmt: skip
    for row in rows:
        table.add_row(row.key_name or "(no key)", row.model or "(unrouted)", str(row.requests),
                      str(row.errors), str(row.refused), str(row.prompt_tokens),
                      str(row.completion_tokens))  # fmt: skip
    Console().print(table)


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
        print_json([{**k.__dict__, "limits": k.limits.model_dump(exclude_none=True)} for k in keys])
        return
    _print_keys(keys)
    note = access.keys_note(active, revoked, shown_revoked=show_all)
    if note:
        Console(stderr=True).print(note, highlight=False)


def _print_keys(keys: list[StoredKey]) -> None:
    if not keys:
        return
    table = Table("name", "key starts", "may use", "limits", "created", "expires", "revoked")
    for key in keys:
        table.add_row(
            key.name, key.prefix + "…", ", ".join(key.models) or "all", _limits(key.limits),
            _when(key.created_at), _when(key.expires_at), _when(key.revoked_at),
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
