"""`corral serve`: run the fleet's deployments behind the gateway until Ctrl-C."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve() -> None:
        """Start the deployments and the gateway (foundation work in progress)."""
        typer.echo("not yet")
