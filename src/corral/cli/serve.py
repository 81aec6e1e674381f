"""`corral serve` and `corral status`: run the fleet behind the gateway; show what ran."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from corral import serving
from corral.cli import access
from corral.cli.common import config_from, home_of, print_json
from corral.config import CorralConfig
from corral.control.memory import memory_of
from corral.deploy.planning import plan_figures
from corral.errors import StoreError
from corral.ledger import runs
from corral.ledger.db import Ledger, open_ledger
from corral.ledger.hosts import HostEntry, fleet_by_host
from corral.paths import ledger_path, models_dir
from corral.store import default_model, resolve_model, store_roots
from corral.verify.gate import make_gate


class ConsoleReporter:
    """Prints each deployment's progress (phases as they begin, with seconds since start)."""

    QUIET = frozenset({"fact"})

    def __init__(self, console: Console, width: int = 12) -> None:
        self.console = console
        self.width = width
        self.t0 = time.monotonic()

    def say(self, deployment: str, kind: str, text: str) -> None:
        if kind in self.QUIET:
            return
        at = time.monotonic() - self.t0
        if kind == "phase":
            line = f"  {deployment}  {text:<{self.width}} (at {at:5.1f} s)"
        else:
            line = f"  {deployment}: {kind} {text}"
        self.console.print(line, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("status")(status)


def serve(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="corral.yaml (default: SmolLM2 on vLLM CPU)"
    ),
    host: str | None = typer.Option(None, "--host", help="gateway address (default 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", "-p", help="gateway port (default 8000)"),
    insecure_no_auth: bool = typer.Option(
        False,
        "--insecure-no-auth",
        help="allow a gateway bound beyond loopback to run WITHOUT API keys (logged loudly)",
    ),
    stop_engines_on_exit: bool = typer.Option(
        False,
        "--stop-engines-on-exit",
        help="Ctrl-C stops every engine too (the default without --config; with a config: "
        "`serve: {stop_engines_on_exit: true}`)",
    ),
) -> None:
    """Run every deployment in the config behind the OpenAI-compatible gateway, until Ctrl-C.

    Without --config: SmolLM2-135M-Instruct on vLLM's CPU build, served as
    `smollm2-135m-instruct` (alias `default`) on http://127.0.0.1:8000; the
    model is pulled first if it is missing; Ctrl-C stops the gateway and the engine.

    With --config: every deployment (process and docker) is started, or adopted when it
    already runs (left by `corral deploy` or an earlier serve), and kept alive: a dead
    engine is restarted with backoff; one that fails to start stays listed in /v1/models
    (`routable: false`, with the reason) while the rest serve. While it runs, `corral
    deploy NAME` and `corral stop NAME` from another terminal change what it routes within
    about a second. Ctrl-C closes the gateway and leaves the engines running for the next
    serve to adopt, unless --stop-engines-on-exit.

    A gateway bound beyond loopback (--host 0.0.0.0) refuses to start without API keys
    (`corral keys create`); --insecure-no-auth overrides that, loudly.

    Example:  corral serve --config examples/corral.yaml --port 8080
    """
    gateway: dict[str, object] = {}
    if host is not None:
        gateway["host"] = host
    if port is not None:
        gateway["port"] = port
    if insecure_no_auth:
        gateway["insecure_no_auth"] = True
    cfg = config_from(config, gateway=gateway or None)
    home = home_of(cfg)
    console = Console(stderr=True)
    serving.check_gateway_port(cfg)  # before a pull or an engine start, not after
    serving.check_exposure(cfg, home)  # and before "starting ..." is printed
    _ensure_default_model(cfg, home, console)
    stop_engines = stop_engines_on_exit or cfg.serve.stop_engines_on_exit

    def reload() -> CorralConfig:
        return config_from(config, gateway=gateway or None)

    ok = asyncio.run(_serve(cfg, home, console, stop_engines, reload))
    if not ok:
        console.print("stopped before the fleet was ready")
        raise typer.Exit(130)


async def _serve(
    cfg: CorralConfig, home: Path, console: Console, stop_engines: bool,
    reload: Callable[[], CorralConfig],
) -> bool:  # fmt: skip
    stop = asyncio.Event()
    serving.install_stop_signals(stop)
    reporter = ConsoleReporter(console)
    names = ", ".join(d.name for d in cfg.deployments)
    console.print(f"starting {names} (engine logs in {home / 'runs'})")

    def on_ready(url: str) -> None:
        with open_ledger(ledger_path(home)) as ledger:
            state = access.keys_state(cfg, ledger)
        _print_ready(console, cfg, url, time.monotonic() - reporter.t0, state)

    # Deployments with `verify.gate: true` stay out of routing until their suite passes.
    gate = make_gate(ledger_path(home))
    ok = await serving.serve(
        cfg, home, reporter, stop=stop, on_ready=on_ready, gate=gate, stop_engines=stop_engines,
        reload=reload, planner=plan_figures,
    )  # fmt: skip
    left = "engines gone" if stop_engines else "engines left running (`corral stop NAME`)"
    console.print(f"stopped: gateway closed, {left}")
    return ok


def _print_ready(console: Console, cfg: CorralConfig, url: str, seconds: float, keys: str) -> None:
    first = cfg.deployments[0]
    name = first.aliases[0] if first.aliases else first.name
    console.print(f"[green]ready[/] in {seconds:.1f} s: {url}/v1  (Ctrl-C to stop)")
    for dep in cfg.deployments:
        aliases = f" (alias {', '.join(dep.aliases)})" if dep.aliases else ""
        console.print(f"  model {dep.name}{aliases}", highlight=False)
    hint = access.keys_hint(keys)
    if hint:
        console.print(f"  {hint}", highlight=False, markup=False)
    curl = access.curl_line(url, name, keys_on=keys != "open")
    console.print(f"try:  {curl}", highlight=False, markup=False, soft_wrap=True)


def _ensure_default_model(cfg: CorralConfig, home: Path, console: Console) -> None:
    """Pull the default model (with progress) if a deployment needs it and it is missing."""
    model = default_model.SMOLLM2
    if not any(d.model == model.repo_id for d in cfg.deployments):
        return
    try:
        resolve_model(model.repo_id, store_roots(cfg, home))
        return
    except StoreError:
        pass
    console.print(f"{model.repo_id} is not in the store yet: pulling it once (about a minute)")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"pulling {model.alias}", total=None)

        def on_progress(stage: str, done: int, total: int | None) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        default_model.pull(
            model, models_dir(home), cache_dir=home / "cache" / "wheels", on_progress=on_progress
        )


def status(
    config: Path | None = typer.Option(None, "--config", "-c", help="corral.yaml"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of text"),
) -> None:
    """Show the gateway (its URL, and whether keys are on or every key is revoked), then
    each deployment's last run from the ledger: state, phases, facts, events.

    Example:  corral status --json
    """
    cfg = config_from(config)
    with open_ledger(ledger_path(home_of(cfg))) as ledger:
        rows = status_rows(cfg, ledger)
        gateway = access.gateway_lines(cfg, ledger)
        fleet = fleet_by_host(ledger)
    if as_json:
        print_json(rows)
        return
    console = Console()
    for line in gateway:
        console.print(line, highlight=False, markup=False)
    if not rows:
        console.print("no runs yet: start one with `corral serve`")
    for row in rows:
        _print_status(console, row)
    _print_hosts(console, fleet)


def _print_hosts(console: Console, fleet: list[HostEntry]) -> None:
    """The fleet by host: what each machine is and what runs there (the seed's "Related
    Systems"), from the latest `corral hosts check` and the runs' hosts."""
    if not fleet:
        return
    console.print("[bold]hosts[/]", highlight=False)
    for entry in fleet:
        what = entry.hardware or "hardware not checked yet (`corral hosts check`)"
        running = ", ".join(entry.deployments) or "no active deployment"
        console.print(f"  {entry.host:<10} {what}; {running}", highlight=False, markup=False)


def status_rows(cfg: CorralConfig, ledger: Ledger) -> list[dict[str, Any]]:
    """The ledger's last run of each deployment, then the config's on-demand deployments
    that never ran; each with its shown state and the memory it holds or would need."""
    rows = runs.status(ledger)
    seen = {row["deployment"] for row in rows}
    rows += [_never_ran(dep.name) for dep in cfg.deployments
             if dep.on_demand and dep.name not in seen]  # fmt: skip
    for row in rows:
        configured = next((d.memory_gib for d in cfg.deployments
                           if d.name == row["deployment"]), None)  # fmt: skip
        found = memory_of(configured, row["facts"])
        row["shown_state"] = _shown_state(row)
        row["memory_gib"], row["memory_source"] = found if found else (None, "")
    return rows


def _never_ran(name: str) -> dict[str, Any]:
    why = "on demand: starts on the first request"
    return {"deployment": name, "run": None, "state": "stopped", "engine": "", "facts": {},
            "engine_version": None, "base_url": None, "phases": [], "events": [],
            "log_path": None, "stopped_because": why}  # fmt: skip


HOLDING = frozenset({"ready", "starting"})


def _shown_state(row: dict[str, Any]) -> str:
    """`evicted` or `stopped (idle ...)` for on-demand stops, with the reason; `sleeping`
    for a ready engine whose last sleep/wake event is a sleep."""
    why = row.get("stopped_because")
    if row["state"] == "ready" and _asleep(row):
        return "sleeping"
    if row["state"] != "stopped" or not isinstance(why, str):
        return str(row["state"])
    return f"evicted ({why})" if why.startswith("evicted") else f"stopped ({why})"


def _asleep(row: dict[str, Any]) -> bool:
    """The newest sleep or wake event of the run is a sleep (events come oldest first)."""
    kinds = [e["kind"] for e in row.get("events", []) if e.get("run_id") == row.get("run")]
    told = [k for k in kinds if k in {"sleep", "wake"}]
    return bool(told) and told[-1] == "sleep"


def _memory_line(row: dict[str, Any]) -> str:
    if row["memory_gib"] is None:
        return "  memory       unknown until it has run (set memory_gib to place it by memory)"
    verb = "holds" if row["state"] in HOLDING and row["shown_state"] != "sleeping" else (
        "would need")  # fmt: skip
    return f"  memory       {verb} {row['memory_gib']:.2f} GiB ({row['memory_source']})"


def _print_status(console: Console, row: dict[str, Any]) -> None:
    state = row["shown_state"]
    if row["run"] is None:
        console.print(f"[bold]{row['deployment']}[/]  {state}", highlight=False)
        console.print(_memory_line(row), highlight=False, markup=False)
        return
    version = row["engine_version"] or "?"
    console.print(
        f"[bold]{row['deployment']}[/]  run {row['run']}  {state}  "
        f"{row['engine']} {version}  engine {row['base_url']}",
        highlight=False,
    )
    console.print(_memory_line(row), highlight=False, markup=False)
    for phase in row["phases"]:
        seconds = phase["seconds"]
        shown = f"{seconds:6.1f} s" if seconds is not None else "   ..."
        console.print(f"  {phase['name']:<12} {shown}", highlight=False)
    for name, value in row["facts"].items():
        console.print(f"  {name} = {value}", highlight=False, markup=False)
    console.print(f"  log: {row['log_path']}", highlight=False, markup=False)
