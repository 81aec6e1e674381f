"""`GatewayServer`: the gateway as a start/stop object inside `corral serve`'s asyncio loop.

    server = GatewayServer(fleet, settings, roles=config.roles, key_store=store)
    await server.start()        # binds settings.host:settings.port (or `port=` override)
    ...                         # server.url, server.gateway.metrics
    await server.stop()

States: created → started (listening) → stopped. `start` raises `PortInUseError` naming
the port when it is taken, and `ConfigError` when the gateway would listen beyond
loopback without any API key (unless `insecure_no_auth`, which logs a loud warning).
`stop` closes the listening socket, cancels in-flight handlers (which closes their engine
connections) and closes the HTTP session if the server created it.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping

import aiohttp
from aiohttp import web

from corral.config import GatewaySettings, Role
from corral.errors import ConfigError, PortInUseError
from corral.fleet import FleetView, OnDemand
from corral.gateway.app import Gateway
from corral.gateway.auth import KeySource, config_records
from corral.gateway.engine_metrics import EngineScraper, NvmlSampler, nvml_sampler
from corral.gateway.ui import ConsoleSources
from corral.gateway.ui.console import Console
from corral.gateway.ui.sessions import Sessions
from corral.gateway.usage import UsageRecorder, UsageSink

log = logging.getLogger("corral.gateway")

# Below the engines' keep-alive (uvicorn's default is 5 s) so a pooled connection is never
# reused just as the engine closes it, which would look like an engine failure.
UPSTREAM_KEEPALIVE_SECONDS = 3.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def upstream_session() -> aiohttp.ClientSession:
    """The shared engine client: no pool limit (admission bounds concurrency), no cookies."""
    connector = aiohttp.TCPConnector(
        limit=0, keepalive_timeout=UPSTREAM_KEEPALIVE_SECONDS, enable_cleanup_closed=False
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
    )


class GatewayServer:
    """Owns the listening socket and (unless given one) the upstream session."""

    def __init__(
        self,
        fleet: FleetView,
        settings: GatewaySettings,
        *,
        roles: Mapping[str, Role] | None = None,
        key_store: KeySource | None = None,
        clock: Callable[[], float] = time.monotonic,
        session: aiohttp.ClientSession | None = None,
        host: str | None = None,
        port: int | None = None,
        usage: UsageSink | None = None,
        console: ConsoleSources | None = None,
        gpus: NvmlSampler | None = None,
        on_demand: OnDemand | None = None,
    ) -> None:
        self.fleet = fleet
        self.on_demand = on_demand
        self.settings = settings
        self.roles = roles
        self.key_store = key_store
        self.clock = clock
        self.host = host or settings.host
        self.port = settings.port if port is None else port
        self._session = session
        self._owns_session = session is None
        self._runner: web.ServerRunner | None = None
        # Per-key usage goes to `usage` (the ledger's key_usage table) in batches.
        self.usage = UsageRecorder(usage, every=settings.usage_flush_seconds)
        self.gateway: Gateway | None = None
        self.console = console or ConsoleSources()
        self._gpus = gpus

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Check exposure, build the gateway, bind host:port. Port 0 picks a free port."""
        self.check_exposure()  # before a session exists that would need closing
        session = self._session or upstream_session()
        self._session = session
        exposed = not is_loopback(self.host) and not self.settings.insecure_no_auth
        gateway = Gateway(
            self.fleet, self.settings, session=session, roles=self.roles,
            key_store=self.key_store, clock=self.clock, auth_required=exposed, usage=self.usage,
            engines=EngineScraper(session), gpus=self._gpus or nvml_sampler(),
            on_demand=self.on_demand,
        )  # fmt: skip
        gateway.console = self._console(gateway)
        server = web.Server(gateway.handle, handler_cancellation=True)
        runner = web.ServerRunner(server, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, backlog=1024).start()
        except OSError as exc:
            await runner.cleanup()
            await self._close_session()
            raise _bind_error(exc, self.host, self.port) from exc
        self.port = _bound_port(runner, self.port)
        self._runner, self.gateway = runner, gateway
        await self.usage.start()
        log.info("gateway listening on %s", self.url)

    def _console(self, gateway: Gateway) -> Console:
        sessions = Sessions(gateway.auth, self.settings.admin_keys)
        gpus = gateway.gpus
        return Console(
            gateway, sessions, ledger=self.console.ledger, actions=self.console.actions,
            gpus=gpus.samples if gpus is not None else list,
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop listening and end in-flight requests. Safe to call twice."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.usage.stop()
        if self.gateway is not None and self.gateway.shapes is not None:
            self.gateway.shapes.close()
        await self._close_session()

    async def _close_session(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def check_exposure(self) -> None:
        """ConfigError if this gateway would listen beyond loopback with no API key at all.

        Cheap and side-effect free, so `corral serve` calls it before any engine starts."""
        if is_loopback(self.host) or self._has_keys():
            return
        if self.settings.insecure_no_auth:
            log.warning(
                "INSECURE: the gateway listens on %s with NO API KEY; anyone who can reach "
                "this address can use every model. Add keys with `corral keys create`.",
                self.host,
            )
            return
        raise ConfigError(
            f"refusing to listen on {self.host} without API keys: the gateway would be open "
            "to anyone who can reach that address",
            hint="create a key with `corral keys create --name NAME`, add gateway.api_keys "
            "to corral.yaml, bind 127.0.0.1, or (not recommended) set "
            "gateway.insecure_no_auth / --insecure-no-auth",
        )

    def _has_keys(self) -> bool:
        if config_records(self.settings.api_keys):
            return True
        return self.key_store is not None and bool(self.key_store.active_keys())


def _bind_error(exc: OSError, host: str, port: int) -> Exception:
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(
            f"the gateway cannot listen on {host}:{port}: port {port} is already in use",
            hint=f"stop whatever listens on port {port}, or pick another with --port",
        )
    return ConfigError(f"the gateway cannot listen on {host}:{port}: {exc.strerror}")


def _bound_port(runner: web.ServerRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested
