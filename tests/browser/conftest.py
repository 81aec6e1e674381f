"""A real Chromium (Debian's package, driven by the Python `playwright` package; never
`playwright install`) against a gateway that serves the real vLLM engine.

The fleet: the session's real vLLM engine (`smollm2-135m-instruct`, alias `default`), a
deployment `toy` run by serve's real fleet and supervisor (`corral.control`: the scripted
engine through the one pipeline, verify gate on, so the ledger holds its phases and checks),
and `cold`, a replica that is never routable. Keys:
`admin` (may act) and `viewer`. The ledger is a fresh SQLite file.

Screenshots go to a temporary folder, or to `$CORRAL_SCREENSHOTS` (docs/images when the
docs are refreshed: `CORRAL_SCREENSHOTS=docs/images pytest tests/browser`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, sync_playwright
from pydantic import SecretStr

from corral.bench.client import Endpoint
from corral.bench.load import Runner
from corral.bench.prompts import ServerTokenizer
from corral.bench.results import Target, save_to_ledger
from corral.bench.serve import ServeSettings, run_serve
from corral.config import (
    ApiKey,
    Capabilities,
    CorralConfig,
    Deployment,
    GatewaySettings,
    VerifyGate,
)
from corral.control.fleet import Fleet
from corral.control.pipeline import Live, Services, prepare_checked, runtime_of
from corral.control.supervisor import Supervisor
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer
from corral.gateway.ui import ConsoleSources, FleetActions
from corral.ledger.db import Ledger, open_ledger
from corral.verify.gate import make_gate
from tests.support.console import Cleanup, Fleets, LiveGateway
from tests.support.fleet import fleet_config, scripted
from tests.support.vllm import LiveEngine
from tests.unit.test_render import cpu_box

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
ADMIN_KEY = "sk-console-admin-0123456789"
VIEWER_KEY = "sk-console-viewer-0123456789"


@dataclass
class Console:
    live: LiveGateway
    ledger_path: Path
    fleet: Fleet
    engine: LiveEngine

    @property
    def url(self) -> str:
        return self.live.url

    def models(self, key: str = ADMIN_KEY) -> dict[str, dict[str, object]]:
        answer = httpx.get(self.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
        answer.raise_for_status()
        return {card["id"]: card for card in answer.json()["data"]}


def settings() -> GatewaySettings:
    return GatewaySettings(
        api_keys=[ApiKey(name="admin", key=SecretStr(ADMIN_KEY)),
                  ApiKey(name="viewer", key=SecretStr(VIEWER_KEY))],
        admin_keys=["admin"],
    )  # fmt: skip


def vllm_replica(engine: LiveEngine) -> tuple[Policy, Replica]:
    policy = Policy(
        engine.served_name, aliases=("default",),
        capabilities=Capabilities(context_length=4096, tools=True),
    )  # fmt: skip
    return policy, Replica("vllm-0", engine.served_name, engine.base_url, routable=True,
                           state="ready")  # fmt: skip


COLD = Policy("cold"), Replica("cold-0", "cold", "http://127.0.0.1:9", state="starting")


@pytest.fixture(scope="module")
def console(vllm_engine: LiveEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    ledger_path = folder / "ledger.sqlite3"
    made: dict[str, Fleet] = {}

    async def build() -> tuple[GatewayServer, Cleanup]:
        ledger = open_ledger(ledger_path)  # on the gateway's thread, as SQLite wants
        http = httpx.AsyncClient()
        # Two runs of `toy` with different flags (the history shows the diff), then a
        # benchmark of the second through corral's own bench code.
        first = await toy_fleet(folder, ledger, http, ledger_path, TOY_ARGS[:2])  # no pacing
        await first.close(stop_engines=True)
        fleet = await toy_fleet(folder, ledger, http, ledger_path, TOY_ARGS)
        made["fleet"] = fleet
        await bench_toy(ledger, http, live_toy(fleet))
        server = GatewayServer(
            Fleets([StaticFleet.of([vllm_replica(vllm_engine), COLD]), fleet]), settings(),
            port=0, console=ConsoleSources(ledger, FleetActions(fleet)),
        )  # fmt: skip
        await server.start()

        async def cleanup() -> None:
            await server.stop()
            await fleet.close(stop_engines=True)
            await http.aclose()
            ledger.close()

        return server, cleanup

    with LiveGateway(build) as live:
        yield Console(live, ledger_path, made["fleet"], vllm_engine)


TOY_ARGS = ["--tokens", "12", "--itl", "0.01", "--reasoning-tokens", "6"]


async def toy_fleet(
    folder: Path, ledger: Ledger, http: httpx.AsyncClient, ledger_path: Path, args: list[str]
) -> Fleet:
    """`toy` under serve's fleet, started and settled (ready, its gate passed)."""
    toy = scripted("toy", folder, aliases=["sketch"], args=args, verify=VerifyGate(gate=True))
    config = fleet_config(folder, [toy])
    services = Services(ledger, folder, cpu_box)

    def supervisor_for(cfg: CorralConfig, dep: Deployment, desired: bool) -> Supervisor:
        return Supervisor(
            dep, lambda: prepare_checked(cfg, dep.name, services), services,
            runtime_of(dep, services, supervised=True), http, gate=make_gate(ledger_path),
            desired=desired,
        )  # fmt: skip

    fleet = Fleet(config, services, supervisor_for)
    await fleet.start()
    await fleet.settled()
    (view,) = fleet.deployments()
    if not view.routable:
        await fleet.close(stop_engines=True)
        raise AssertionError(f"toy did not serve: {view.state}: {view.reason}")
    return fleet


def live_toy(fleet: Fleet) -> Live:
    live = fleet.supervisors["toy"].live
    assert live is not None
    return live


async def bench_toy(ledger: Ledger, http: httpx.AsyncClient, live: Live) -> None:
    endpoint = Endpoint(live.base_url, "toy")
    settings = ServeSettings(concurrency=[1, 2, 4], num_requests=8, input_len=32, output_len=12)
    result = await run_serve(
        endpoint, settings, ServerTokenizer(http, live.base_url, "toy"), runner=Runner(endpoint)
    )
    save_to_ledger(ledger, Target(live.base_url, "toy", live.run_id), "toy", result)


@dataclass
class Watched:
    """A page with its console errors and uncaught exceptions collected."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def clean(self, allowed: tuple[str, ...] = ()) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in allowed)]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data-dir
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 860},
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Watched]:
    tab = browser.new_page()
    watched = Watched(tab)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    tab.on("console", on_console)
    tab.on("pageerror", lambda exc: watched.errors.append(f"uncaught: {exc}"))
    try:
        yield watched
    finally:
        tab.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("CORRAL_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(page: Page, url: str, key: str = ADMIN_KEY) -> None:
    page.context.clear_cookies()
    page.goto(url + "/ui")
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_selector("header nav")
