"""A real Chromium (Debian's package, driven by the Python `playwright` package; never
`playwright install`) against a gateway that serves the real vLLM engine.

The fleet: the session's real vLLM engine (`smollm2-135m-instruct`, alias `default`), a
deployment `toy` run by the real controller (the scripted engine, verify gate on, so the
ledger holds its phases and checks), and `cold`, a replica that is never routable. Keys:
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
from corral.controller.deployment import RunnerDeps
from corral.controller.fleet import Controller
from corral.controller.view import Replica, StaticFleet
from corral.gateway import GatewayServer
from corral.gateway.ui import ConsoleSources, ControllerActions
from corral.ledger.db import Ledger, open_ledger
from corral.verify.gate import make_gate
from tests.support.console import Cleanup, Fleets, LiveGateway
from tests.support.vllm import LiveEngine
from tests.unit.test_controller import ScriptedAdapter

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
    controller: Controller
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


def vllm_replica(engine: LiveEngine) -> Replica:
    return Replica(
        id="vllm-0", served_name=engine.served_name, base_url=engine.base_url,
        aliases=("default",), capabilities=Capabilities(context_length=4096, tools=True),
        routable=True, state="ready",
    )  # fmt: skip


COLD = Replica(id="cold-0", served_name="cold", base_url="http://127.0.0.1:9", state="starting")


@pytest.fixture(scope="module")
def console(vllm_engine: LiveEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    ledger_path = folder / "ledger.sqlite3"
    made: dict[str, Controller] = {}

    async def build() -> tuple[GatewayServer, Cleanup]:
        ledger = open_ledger(ledger_path)  # on the gateway's thread, as SQLite wants
        http = httpx.AsyncClient()
        # Two runs of `toy` with different flags (the history shows the diff), then a
        # benchmark of the second through corral's own bench code.
        first = toy_controller(folder, ledger, http, ledger_path, TOY_ARGS[:2])  # no pacing
        await first.start_all()
        await first.stop_all()
        controller = toy_controller(folder, ledger, http, ledger_path, TOY_ARGS)
        made["controller"] = controller
        await controller.start_all()
        await bench_toy(ledger, http, controller)
        fleet = Fleets([StaticFleet([vllm_replica(vllm_engine), COLD]), controller])
        server = GatewayServer(
            fleet, settings(), port=0,
            console=ConsoleSources(ledger, ControllerActions(controller)),
        )  # fmt: skip
        await server.start()

        async def cleanup() -> None:
            await server.stop()
            await controller.stop_all()
            await http.aclose()
            ledger.close()

        return server, cleanup

    with LiveGateway(build) as live:
        yield Console(live, ledger_path, made["controller"], vllm_engine)


TOY_ARGS = ["--tokens", "12", "--itl", "0.01", "--reasoning-tokens", "6"]


def toy_controller(
    folder: Path, ledger: Ledger, http: httpx.AsyncClient, ledger_path: Path, args: list[str]
) -> Controller:
    toy = Deployment(
        name="toy", model="scripted/toy", aliases=["sketch"], args=args,
        verify=VerifyGate(gate=True),
    )  # fmt: skip

    def deps_for(_: Deployment) -> RunnerDeps:
        return RunnerDeps(
            ledger=ledger, http=http, runs_dir=folder / "runs", engine=ScriptedAdapter(),  # type: ignore[arg-type]
            model_path=folder, gate=make_gate(ledger_path), grace=2.0,
        )  # fmt: skip

    return Controller(CorralConfig(deployments=[toy]), deps_for)


async def bench_toy(ledger: Ledger, http: httpx.AsyncClient, controller: Controller) -> None:
    runner = controller.runners[0]
    endpoint = Endpoint(runner.base_url, "toy")
    settings = ServeSettings(concurrency=[1, 2, 4], num_requests=8, input_len=32, output_len=12)
    result = await run_serve(
        endpoint, settings, ServerTokenizer(http, runner.base_url, "toy"), runner=Runner(endpoint)
    )
    save_to_ledger(ledger, Target(runner.base_url, "toy", runner.run_id), "toy", result)


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
