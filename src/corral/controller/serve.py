"""`corral serve` as one domain function: engines up, then the gateway, until told to stop.

    await serve(config, home, reporter, stop=event, on_ready=print_endpoint)

Order: check the gateway's port is free (fail before a 30-second engine start, not after);
resolve every deployment's model; start the engines and wait until all are routable; bind
the gateway; call `on_ready(url)`; wait for `stop` (the CLI sets it on SIGINT/SIGTERM).
Whatever happens — a failed start, a stop during startup, an error in the gateway — the
gateway is closed and every engine process group is gone before `serve` returns or raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from corral.config import CorralConfig, Deployment
from corral.controller.deployment import Gate, Reporter, RunnerDeps
from corral.controller.fleet import Controller
from corral.engines import engine_for
from corral.errors import PortInUseError
from corral.gateway import GatewayServer
from corral.gateway.keystore import KeyStore
from corral.gateway.ui import ConsoleSources, ControllerActions
from corral.ledger.db import Ledger, open_ledger
from corral.paths import ledger_path, runs_dir
from corral.runtime.ports import port_in_use
from corral.store import resolve_model, store_roots


def detected_cores() -> int:
    """CPU cores this process may run on (what the engine will get)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover  (not Linux)
        return os.cpu_count() or 1


def detected_device() -> str:
    """`gpu` when an NVIDIA device node exists, else `cpu` (vLLM's CPU build)."""
    return "gpu" if Path("/dev/nvidia0").exists() else "cpu"


def check_gateway_port(config: CorralConfig) -> None:
    host, port = config.gateway.host, config.gateway.port
    if port and port_in_use(host, port):
        raise PortInUseError(
            f"the gateway cannot listen on {host}:{port}: port {port} is already in use",
            hint=f"stop whatever listens on port {port}, or pick another with --port",
        )


def deps_factory(
    config: CorralConfig,
    home: Path,
    *,
    ledger: Ledger,
    http: httpx.AsyncClient,
    reporter: Reporter,
    gate: Gate | None,
) -> Callable[[Deployment], RunnerDeps]:
    """How the controller gets a runner's dependencies for each deployment."""
    roots = store_roots(config, home)
    cores, device = detected_cores(), detected_device()

    def deps_for(dep: Deployment) -> RunnerDeps:
        return RunnerDeps(
            ledger=ledger, http=http, runs_dir=runs_dir(home), engine=engine_for(dep.engine),
            model_path=resolve_model(dep.model, roots), cache_dir=home / "cache" / "vllm",
            gate=gate, reporter=reporter, cpu_cores=cores, device=device,
            python=sys.executable,
        )  # fmt: skip

    return deps_for


async def serve(
    config: CorralConfig,
    home: Path,
    reporter: Reporter,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
    gate: Gate | None = None,
) -> bool:
    """Serve until `stop` is set. False if stopped before everything was ready."""
    check_gateway_port(config)
    ledger = open_ledger(ledger_path(home))
    http = httpx.AsyncClient()
    deps_for = deps_factory(config, home, ledger=ledger, http=http, reporter=reporter, gate=gate)
    controller = Controller(config, deps_for)
    gateway = _gateway(controller, config, ledger)
    try:
        gateway.check_exposure()  # before a 30 s engine start, not after
        if not await until_stopped(controller.start_all(), stop):
            return False
        await gateway.start()
        on_ready(gateway.url)
        await stop.wait()
        return True
    finally:
        await gateway.stop()  # safe when it never started
        await controller.stop_all()
        await http.aclose()
        ledger.close()


def _gateway(controller: Controller, config: CorralConfig, ledger: Ledger) -> GatewayServer:
    console = ConsoleSources(ledger, ControllerActions(controller))
    return GatewayServer(
        controller, config.gateway, roles=config.roles, key_store=KeyStore(ledger), console=console
    )


async def until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `work` unless `stop` is set first (then cancel it); True if it completed."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set `stop` (a second one while stopping changes nothing)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
