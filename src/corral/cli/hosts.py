"""`corral hosts check`: can every host in corral.yaml run what is placed on it?"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from corral.cli.common import config_from, home_of, print_json
from corral.hosts.check import HostReport, check_host, remote_hosts
from corral.hosts.ssh import client_for
from corral.ledger.db import open_ledger
from corral.ledger.hosts import record_check
from corral.paths import ledger_path

hosts_app = typer.Typer(
    help="The other machines of the fleet, reached over SSH (no corral agent runs there).",
    no_args_is_help=True,
)
STYLE = {"ok": "green", "warn": "yellow", "error": "bold red"}


def register(app: typer.Typer) -> None:
    app.add_typer(hosts_app, name="hosts")


@hosts_app.command("check")
def check(
    names: list[str] = typer.Argument(None, help="hosts to check (default: all in the config)"),
    config: Path | None = typer.Option(None, "--config", "-c", help="corral.yaml"),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Reach each host over SSH and report what its deployments need: SSH (key auth, the
    host key checked against known_hosts), docker or the engine, GPUs (`nvidia-smi -q -x`
    run there, parsed here), free memory, each store root's mount, and clock skew.

    Exits 1 when any host has an error (unreachable, key refused or changed, docker or the
    engine missing, fewer GPUs than a recipe needs, a store root not mounted): the same
    checks `corral serve` makes before it starts anything on that host.

    Example: `corral hosts check --config examples/fleet-two-sparks.yaml pegasus`.
    """
    cfg = config_from(config)
    home = home_of(cfg)
    reports = [
        check_host(name, cfg, client_for(cfg, name, home))
        for name in remote_hosts(cfg, names or ())
    ]
    entries = [r.as_json() for r in reports]
    with open_ledger(ledger_path(home)) as ledger:
        for entry in entries:
            record_check(ledger, entry)
    if json_out:
        print_json(entries)
    else:
        for report in reports:
            _print(report)
    if any(r.errors for r in reports):
        raise typer.Exit(1)


def _print(report: HostReport) -> None:
    console = Console()
    table = Table(title=f"{report.host} ({report.address})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("state")
    table.add_column("detail")
    for finding in report.findings:
        table.add_row(finding.what, f"[{STYLE[finding.level]}]{finding.level}[/]", finding.detail)
    console.print(table)
    for finding in report.findings:
        if finding.hint and finding.level != "ok":
            console.print(f"[yellow]hint ({finding.what}):[/] {finding.hint}", highlight=False)
