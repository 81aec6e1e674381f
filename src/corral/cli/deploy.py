"""`corral deploy NAME`, `corral logs NAME [-f]`, `corral stop NAME`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from corral.cli.common import config_from, home_of
from corral.config import LOCAL_HOST, CorralConfig
from corral.deploy.flow import DeployOptions, DeployResult, Services, deploy, log_lines, stop
from corral.deploy.planning import plan_figures
from corral.hardware.detect import detect_local
from corral.hosts.pool import HostPool
from corral.ledger import runs
from corral.ledger.db import open_ledger
from corral.paths import ledger_path

CONFIG = typer.Option(None, "--config", "-c", help="corral.yaml (default: the built-in fleet)")
STYLE = {
    "issue": "yellow",
    "forced": "red",
    "phase": "cyan",
    "fact": "dim",
    "failure": "red",
    "ready": "green",
    "check": "white",
}


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_command)
    app.command("logs")(logs_command)
    app.command("stop")(stop_command)


def _services(cfg: CorralConfig, console: Console, name: str) -> Services:
    """The pipeline's services for deployment `name`, on the host corral.yaml places it."""
    home = home_of(cfg)

    def say(kind: str, text: str) -> None:
        console.print(f"[{STYLE.get(kind, 'bold')}]{kind:>8}[/] {text}", highlight=False)

    where = next((d.host for d in cfg.deployments if d.name == name), LOCAL_HOST)
    pool = HostPool(cfg, home)  # a multi-node run's ranks are found on their own hosts
    return Services(open_ledger(ledger_path(home)), home, detect_local, say=say,
                    planner=plan_figures, host=pool.host(where), hosts=pool.host)  # fmt: skip


def deploy_command(  # noqa: PLR0917  (a Typer command: one parameter per option)
    name: str = typer.Argument(..., help="deployment name from corral.yaml"),
    config: Path | None = CONFIG,
    force: bool = typer.Option(
        False, "--force", help="use the named recipe on hardware it doesn't match"
    ),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="run the verify suite"),
    checks: str | None = typer.Option(None, "--checks", help="comma-separated verify checks"),
    bench: bool = typer.Option(False, "--bench", help="measure the story table afterwards"),
    bench_max_tokens: int = typer.Option(
        128, "--bench-max-tokens", min=8, help="cap per story (keeps --bench quick)"
    ),
    timeout: float | None = typer.Option(None, "--timeout", help="startup timeout, seconds"),
    host: str | None = typer.Option(
        None, "--host", help="run it on this host from corral.yaml instead of its own `host:`"
    ),
) -> None:
    """Launch a deployment detached (or adopt it if it already runs), show its startup
    phase by phase, wait until it is ready, verify it, and record everything.

    Example: `corral deploy smollm2-135m-instruct --bench` (the default model, ~30 s on a
    CPU); `corral report smollm2-135m-instruct` then writes the logbook.
    """
    console = Console(stderr=True)
    cfg = on_host(config_from(config), name, host)
    services = _services(cfg, console, name)
    options = DeployOptions(
        force, verify, checks.split(",") if checks else None, bench, bench_max_tokens, timeout
    )
    with services.ledger:
        result = deploy(cfg, name, services, options)
        Console().print(summary(result, runs.phases(services.ledger, result.run_id)))


def on_host(cfg: CorralConfig, name: str, host: str | None) -> CorralConfig:
    """`cfg` with deployment `name` placed on `host` (validated like the file itself)."""
    if host is None:
        return cfg
    cfg.host(host)  # ConfigError naming the hosts there are
    moved = [d.model_copy(update={"host": host}) if d.name == name else d for d in cfg.deployments]
    return cfg.model_copy(update={"deployments": moved})


def summary(result: DeployResult, phases: list[dict[str, Any]]) -> Table:
    """The closing table: where it serves, how long each phase took, what passed."""
    table = Table(title=f"{result.deployment}: ready", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("endpoint", f"{result.base_url}/v1 (model {result.served_name!r})")
    table.add_row(
        "recipe", f"{result.prepared.choice.recipe.name} on {result.prepared.hardware_kind}"
    )
    table.add_row("run", f"{result.run_id}" + (" (adopted)" if result.adopted else ""))
    if result.startup_s is not None:
        steps = ", ".join(f"{p['name']} {float(p['seconds'] or 0):.1f}s" for p in phases)
        table.add_row("startup", f"{result.startup_s:.1f} s ({steps})")
    if result.verify:
        counts = {
            s: sum(1 for r in result.verify if r.status.value == s)
            for s in ("pass", "fail", "skip")
        }
        table.add_row("verify", ", ".join(f"{n} {s}" for s, n in counts.items()))
    for row in (result.bench or {}).get("rows", []):
        table.add_row(
            f"story {row['words']} words",
            f"{row.get('tokens')} tokens in {row.get('seconds', 0):.2f} s, "
            f"decode {row.get('decode_tok_s') or 0:.1f} tok/s",
        )
    for note in result.notes:
        table.add_row("note", note)
    return table


def logs_command(
    name: str = typer.Argument(..., help="deployment name"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines"),
    config: Path | None = CONFIG,
) -> None:
    """Print the engine log of a deployment's newest run (`-f` follows it).

    Example: `corral logs smollm2-135m-instruct -f`.
    """
    cfg = config_from(config)
    services = _services(cfg, Console(stderr=True), name)
    with services.ledger:
        for line in log_lines(name, services, follow=follow):
            sys.stdout.write(line)
            sys.stdout.flush()


def stop_command(
    name: str = typer.Argument(..., help="deployment name"),
    config: Path | None = CONFIG,
) -> None:
    """Stop a deployment's engine (SIGTERM, then SIGKILL; `docker stop` + `rm` for containers)
    and record the stop.

    Example: `corral stop smollm2-135m-instruct`.
    """
    cfg = config_from(config)
    console = Console(stderr=True)
    services = _services(cfg, console, name)
    with services.ledger:
        run_id = stop(name, services)
    console.print(f"stopped {name} (run {run_id})", highlight=False)
