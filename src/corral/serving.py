"""`corral serve`, the composition root: it wires the control plane (corral.control), the
runtimes on this host, the ledger and the gateway; nothing imports it but the CLI.

    await serve(config, home, reporter, stop=event, on_ready=print_endpoint)

Order: check the gateway's port is free (fail before an engine start, not after); a
supervisor per deployment, each through the one pipeline (adopting engines that already
run); wait until every deployment is ready or has failed once (a failed one stays
visible, retried with backoff, and the rest serve); bind the gateway; call `on_ready`;
wait for `stop` (the CLI sets it on SIGINT/SIGTERM). On the way out the gateway is
closed, and the engines are stopped only with `stop_engines` (the default config's
Ctrl-C-stops-everything); otherwise detached and docker engines keep running for the
next serve to adopt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import httpx

from corral.config import CorralConfig, Deployment
from corral.control.fleet import Fleet
from corral.control.pipeline import Gate, Planner, Services, prepare_checked, runtime_of
from corral.control.supervisor import Supervisor
from corral.errors import ConfigError, HostError, PortInUseError
from corral.fleet import StaticFleet
from corral.gateway import GatewayServer
from corral.gateway.keystore import KeyStore
from corral.gateway.ui import ConsoleSources, FleetActions
from corral.gateway.usage import LedgerUsage
from corral.hardware.detect import detect_local
from corral.hosts.check import blocked, preflight
from corral.hosts.pool import HostPool
from corral.ledger import gateways
from corral.ledger.db import Ledger, open_ledger
from corral.ledger.hosts import record_check
from corral.paths import ledger_path
from corral.recipes.prepare import Detector, Prepared
from corral.runtime.ports import port_in_use

__all__ = [
    "Reporter",
    "check_exposure",
    "check_gateway_port",
    "install_stop_signals",
    "serve",
    "until_stopped",
]


class Reporter(Protocol):
    """Where progress goes while engines start (the CLI prints it)."""

    def say(self, deployment: str, kind: str, text: str) -> None: ...


def check_gateway_port(config: CorralConfig) -> None:
    host, port = config.gateway.host, config.gateway.port
    if port and port_in_use(host, port):
        raise PortInUseError(
            f"the gateway cannot listen on {host}:{port}: port {port} is already in use",
            hint=f"stop whatever listens on port {port}, or pick another with --port",
        )


def check_exposure(config: CorralConfig, home: Path) -> None:
    """ConfigError, before anything starts or is printed, if the gateway would listen
    beyond loopback without a key (see `GatewayServer.check_exposure`)."""
    with open_ledger(ledger_path(home)) as ledger:
        GatewayServer(StaticFleet([]), config.gateway, key_store=KeyStore(ledger)).check_exposure()


async def serve(
    config: CorralConfig,
    home: Path,
    reporter: Reporter,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
    gate: Gate | None = None,
    stop_engines: bool = True,
    reload: Callable[[], CorralConfig] | None = None,
    detect: Detector = detect_local,
    planner: Planner | None = None,
) -> bool:
    """Serve until `stop` is set. False if stopped before every deployment settled."""
    check_gateway_port(config)
    ledger = open_ledger(ledger_path(home))
    http = httpx.AsyncClient()
    services = Services(ledger, home, detect, planner=planner)
    pool = HostPool(config, home, services.host)
    blocked = await asyncio.to_thread(_host_preflight, config, pool, reporter, ledger)
    supervisors = _supervisors(services, http, reporter, gate, stop_engines, pool=pool,
                               blocked=blocked)  # fmt: skip
    fleet = Fleet(config, services, supervisors, reload=reload)
    gateway = GatewayServer(
        fleet, config.gateway, roles=config.roles, key_store=KeyStore(ledger),
        usage=LedgerUsage(ledger), console=ConsoleSources(ledger, FleetActions(fleet)),
        on_demand=fleet.demand,
    )  # fmt: skip
    listed: int | None = None  # the ledger's `gateways` row, so names resolve to this URL
    try:
        gateway.check_exposure()  # before an engine start, not after
        await fleet.start()
        if not await until_stopped(fleet.settled(), stop):
            return False
        await gateway.start()
        listed = gateways.opened(ledger, gateway.url, [d.name for d in config.deployments])
        on_ready(gateway.url)
        await stop.wait()
        return True
    finally:
        await gateway.stop()  # safe when it never started
        if listed is not None:
            gateways.closed(ledger, listed)
        await fleet.close(stop_engines=stop_engines)
        pool.close()
        await http.aclose()
        ledger.close()


def _host_preflight(
    config: CorralConfig, pool: HostPool, reporter: Reporter, ledger: Ledger
) -> dict[str, HostError]:
    """`corral hosts check` for every host in use, before anything starts there: the
    deployments a bad host blocks, each with the host's error (the others go on). Each
    report goes into the ledger, as `corral hosts check` records it (status shows it)."""
    reports = preflight(config, pool.client)
    for name, report in reports.items():
        record_check(ledger, report.as_json())
        for finding in report.errors:
            reporter.say(name, "host", f"{finding.what}: {finding.detail}")
    return blocked(config, reports)


def _supervisors(
    services: Services, http: httpx.AsyncClient, reporter: Reporter, gate: Gate | None,
    supervised: bool, *, pool: HostPool | None = None, blocked: dict[str, HostError] | None = None,
) -> Callable[[CorralConfig, Deployment, bool], Supervisor]:  # fmt: skip
    """How the fleet gets a supervisor for each deployment (its own `say` and host)."""

    stopped = blocked or {}

    def supervisor_for(config: CorralConfig, dep: Deployment, desired: bool) -> Supervisor:
        host = pool.host(dep.host) if pool is not None else services.host
        own = replace(services, host=host, hosts=pool.host if pool is not None else None,
                      say=lambda kind, text: reporter.say(dep.name, kind, text))  # fmt: skip
        key = endpoint_key(dep)
        client = http if key is None else httpx.AsyncClient(headers=bearer(key))

        def prepare() -> Prepared:
            if dep.name in stopped:  # a host error: visible as failed, not retried
                raise stopped[dep.name]
            return prepare_checked(config, dep.name, own)

        return Supervisor(
            dep, prepare, own, runtime_of(dep, own, supervised=supervised, config=config),
            client, gate=gate,
            desired=desired, api_key=key, owns_http=client is not http,
        )  # fmt: skip

    return supervisor_for


def endpoint_key(dep: Deployment, env: Mapping[str, str] | None = None) -> str | None:
    """An unmanaged endpoint's key, from the environment variable its config names."""
    if dep.api_key_env is None:
        return None
    value = (os.environ if env is None else env).get(dep.api_key_env)
    if not value:
        raise ConfigError(
            f"deployment {dep.name!r} reads its endpoint's key from ${dep.api_key_env}, "
            "which is not set",
            hint=f"export {dep.api_key_env}=... before `corral serve`",
        )
    return value


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def until_stopped(work: Coroutine[Any, Any, Any], stop: asyncio.Event) -> bool:
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
