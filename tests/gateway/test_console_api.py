"""The console's HTTP surface without a browser: sessions, the login wall, CSRF, actions,
and the committed front-end build (tests/browser/ drives it in Chromium)."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from corral.config import ApiKey, GatewaySettings
from corral.fleet import StaticFleet
from corral.gateway import GatewayServer
from corral.gateway.auth import KeyRecord, hash_key
from corral.gateway.ui import ConsoleSources
from corral.gateway.ui.console import load_static
from corral.ledger.db import open_ledger
from corral.ledger.launches import runs_of
from corral.serving import serve
from tests.gateway.conftest import StartEngine, replica
from tests.support.fleet import fleet_config, scripted
from tests.support.vllm import free_port
from tests.unit.test_render import cpu_box

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web" / "console"
ADMIN, VIEWER, STORED = "sk-admin-000000000000", "sk-viewer-00000000000", "sk-stored-000000000"


@dataclass
class Keys:
    """A key store whose keys a test can revoke."""

    records: list[KeyRecord] = field(default_factory=list)

    def active_keys(self) -> list[KeyRecord]:
        return list(self.records)


@pytest.fixture
async def gateway(engines: StartEngine) -> AsyncIterator[tuple[str, Keys]]:
    keys = Keys([KeyRecord("stored", hash_key(STORED))])
    settings = GatewaySettings(
        api_keys=[ApiKey(name="admin", key=SecretStr(ADMIN)),
                  ApiKey(name="viewer", key=SecretStr(VIEWER))],
        admin_keys=["admin"],
    )  # fmt: skip
    fleet = StaticFleet.of([replica(engines())])
    server = GatewayServer(fleet, settings, key_store=keys, port=0, console=ConsoleSources())
    await server.start()
    yield server.url, keys
    await server.stop()


async def login(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post("/ui/login", data={"key": key})


async def test_login_gives_a_strict_httponly_cookie_and_the_key_never_in_a_url(
    gateway: tuple[str, Keys],
) -> None:
    async with httpx.AsyncClient(base_url=gateway[0]) as client:
        answer = await login(client, ADMIN)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui"
        cookie = answer.headers["set-cookie"]
        assert re.match(r"corral_session=[\w-]{40,};", cookie)
        for attribute in ("HttpOnly", "SameSite=Strict", "Path=/ui"):
            assert attribute in cookie
        assert ADMIN not in cookie
        fleet = (await client.get("/ui/api/fleet")).json()
        assert fleet["who"] == {"name": "admin", "admin": True}


async def test_without_a_session_no_data_and_a_wrong_key_gets_the_login_page_again(
    gateway: tuple[str, Keys],
) -> None:
    async with httpx.AsyncClient(base_url=gateway[0]) as client:
        page = await client.get("/ui/deployments/scripted")
        assert 'name="key"' in page.text
        assert "scripted" not in page.text
        assert (await client.get("/ui/api/fleet")).status_code == 401
        refused = await login(client, "sk-nope")
        assert refused.status_code == 401
        assert "not valid" in refused.text
        assert "set-cookie" not in refused.headers
        # The gateway's own routes keep their header auth: a cookie is no key for /v1.
        await login(client, ADMIN)
        assert (await client.get("/v1/models")).status_code == 401


async def test_revoking_a_stored_key_ends_its_sessions(gateway: tuple[str, Keys]) -> None:
    url, keys = gateway
    async with httpx.AsyncClient(base_url=url) as client:
        await login(client, STORED)
        assert (await client.get("/ui/api/fleet")).status_code == 200
        keys.records.clear()
        await _past_refresh()
        assert (await client.get("/ui/api/fleet")).status_code == 401


async def _past_refresh() -> None:
    await asyncio.sleep(1.1)  # the authenticator re-reads the store at most every second


async def test_console_posts_need_the_console_header_and_actions_need_an_admin(
    gateway: tuple[str, Keys],
) -> None:
    chat = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=gateway[0]) as client:
        await login(client, VIEWER)
        forged = await client.post("/ui/api/chat", json=chat)
        assert forged.status_code == 403
        assert forged.json()["error"]["code"] == "csrf"
        header = {"X-Corral-Console": "1"}
        answered = await client.post("/ui/api/chat", json=chat, headers=header)
        assert answered.status_code == 200
        assert answered.json()["choices"][0]["message"]
        denied = await client.post("/ui/api/actions/stop/scripted", headers=header)
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "not_admin"
        await login(client, ADMIN)
        unsupported = await client.post("/ui/api/actions/stop/scripted", headers=header)
        assert unsupported.status_code == 400  # a StaticFleet has no control plane
        (card,) = (await client.get("/ui/api/fleet")).json()["hosts"][0]["deployments"]
        assert card["actions"] == []


async def test_a_loopback_gateway_without_keys_opens_the_console_directly(
    engines: StartEngine,
) -> None:
    server = GatewayServer(StaticFleet.of([replica(engines())]), GatewaySettings(), port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            page = await client.get("/ui")
            assert '<div id="app">' in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
            fleet = (await client.get("/ui/api/fleet")).json()
            assert fleet["hosts"][0]["deployments"][0]["name"] == "scripted"
            assert (await client.get("/ui/static/../../metrics")).status_code == 200
            assert (await client.get("/ui/static/nothing.js")).status_code == 404
    finally:
        await server.stop()


# -- the committed build ----------------------------------------------------------------------
def sources_sha256() -> str:
    """The hash web/console/build.mjs writes into the bundle's banner."""
    names = ["package.json", "package-lock.json", "build.mjs"]
    names += [f"src/{p.name}" for p in sorted((WEB / "src").iterdir())]
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + (WEB / name).read_bytes() + b"\0")
    return digest.hexdigest()


def test_the_committed_bundle_is_built_from_the_sources_as_they_are() -> None:
    banner = load_static()["app.js"].split(b"\n", 1)[0].decode()
    found = re.search(r"sources sha256 ([0-9a-f]{64})", banner)
    assert found, banner
    assert found.group(1) == sources_sha256(), (
        "static/app.js is stale: run `make console` (npm ci && node build.mjs in web/console)"
    )


def test_the_console_loads_nothing_from_elsewhere_and_stays_small() -> None:
    static = load_static()
    assert len(static["app.js"]) < 64 * 1024
    for name, body in static.items():
        text = body.decode()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), name


# -- wired by corral serve ----------------------------------------------------------------------
async def test_serve_offers_stop_on_the_console_and_the_stop_is_what_v1_models_says(
    tmp_path: Path,
) -> None:
    """`corral.serving.serve` hands the console its fleet: a stop from /ui ends the run the
    way `corral stop` does, and the deployment stays listed, not routable, `stopped`."""
    config = fleet_config(tmp_path, [scripted("m", tmp_path)])
    config = config.model_copy(update={"gateway": GatewaySettings(port=free_port())})
    stop, ready = asyncio.Event(), asyncio.Future[str]()
    served = asyncio.ensure_future(serve(
        config, tmp_path, Quiet(), stop=stop, on_ready=ready.set_result, detect=cpu_box,
    ))  # fmt: skip
    try:
        url = await asyncio.wait_for(ready, 30)
        async with httpx.AsyncClient(base_url=url) as client:
            (card,) = (await client.get("/ui/api/fleet")).json()["hosts"][0]["deployments"]
            assert (card["name"], card["state"], card["actions"]) == ("m", "ready", ["stop"])
            header = {"X-Corral-Console": "1"}
            done = await client.post("/ui/api/actions/stop/m", headers=header)
            assert done.json() == {"ok": True, "message": "stopped m"}
            (model,) = (await client.get("/v1/models")).json()["data"]
            assert model["corral"]["routable"] is False
            (card,) = (await client.get("/ui/api/fleet")).json()["hosts"][0]["deployments"]
            assert (card["state"], card["actions"]) == ("stopped", [])
            again = await client.post("/ui/api/actions/stop/m", headers=header)
            assert again.status_code == 400
    finally:
        stop.set()
        assert await asyncio.wait_for(served, 30)
    with open_ledger(tmp_path / "ledger.sqlite3") as ledger:
        (run,) = runs_of(ledger, "m")
    assert run["state"] == "stopped"


class Quiet:
    def say(self, deployment: str, kind: str, text: str) -> None:
        pass
