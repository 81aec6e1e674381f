"""`corral report NAME [--out FILE]`: the deployment logbook, written from the ledger."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from corral.cli.common import config_from, home_of
from corral.ledger.db import open_ledger
from corral.paths import ledger_path
from corral.report.logbook import collect
from corral.report.markdown import render


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    name: str = typer.Argument(..., help="deployment name"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write the Markdown here"),
    config: Path | None = typer.Option(None, "--config", "-c", help="corral.yaml"),
) -> None:
    """Write the deployment logbook in Markdown: hardware, model, the exact run command,
    throughput, memory and KV capacity, startup breakdown, curl examples, verify results,
    known issues and history. Every figure comes from the ledger.

    Example: `corral deploy smollm2-135m-instruct --bench && corral report
    smollm2-135m-instruct --out smollm2.md`.
    """
    cfg = config_from(config)
    path = ledger_path(home_of(cfg))
    with open_ledger(path) as ledger:
        text = render(collect(ledger, name), ledger_path=str(path))
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    Console(stderr=True).print(f"wrote {out}", highlight=False)
