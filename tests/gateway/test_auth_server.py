"""Keys and scopes, exposure rules, path normalization, error shapes, and metric values."""

from __future__ import annotations

import hashlib
import logging
import socket
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import SecretStr

from corral.config import ApiKey, GatewaySettings, Limits
from corral.errors import ConfigError, PortInUseError
from corral.fleet import StaticFleet
from corral.gateway import GatewayServer
from corral.gateway.keystore import KeyStore
from corral.ledger.db import open_ledger
from tests.gateway.conftest import Gateways, StartEngine, replica
from tests.gateway.test_faults import assert_error_shape
from tests.gateway.test_proxy import HELLO, sdk

pytestmark = pytest.mark.timeout(120)

KEYS = [
    ApiKey(name="admin", key=SecretStr("sk-admin-123")),
    ApiKey(name="small-only", sha256=hashlib.sha256(b"sk-small-456").hexdigest(),
           models=["default"]),
]  # fmt: skip


async def get(url: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url, **kw)


async def test_keys_bearer_and_x_api_key_and_scopes(
    engines: StartEngine, gateways: Gateways
) -> None:
    small, big = engines(model="small"), engines(model="big")
    gw = await gateways.start(
        [replica(small, name="small", aliases=("default",)), replica(big, name="big")],
        api_keys=KEYS,
    )
    async with sdk(gw.url, "sk-admin-123") as admin, sdk(gw.url, "sk-small-456") as scoped:
        assert (await admin.chat.completions.create(model="big", messages=HELLO)).model == "big"
        await scoped.chat.completions.create(model="default", messages=HELLO)
        with pytest.raises(openai.PermissionDeniedError) as denied:
            await scoped.chat.completions.create(model="big", messages=HELLO)
        visible = {m.id for m in (await scoped.models.list()).data}
    assert visible == {"default"}  # scoped to the alias: the served name is not its to use
    assert isinstance(denied.value.body, dict)  # the SDK keeps the inner error object
    assert assert_error_shape({"error": denied.value.body}, "corral")["code"] == "model_not_allowed"
    async with httpx.AsyncClient(base_url=gw.url) as client:
        body = {"model": "default", "messages": HELLO}
        by_header = await client.post("/v1/chat/completions", json=body,
                                      headers={"x-api-key": "sk-small-456"})  # fmt: skip
        missing = await client.post("/v1/chat/completions", json=body)
        wrong = await client.post("/v1/chat/completions", json=body,
                                  headers={"Authorization": "Bearer sk-nope"})  # fmt: skip
    assert by_header.status_code == 200
    assert missing.status_code == 401
    assert assert_error_shape(missing.json(), "corral")["code"] == "missing_api_key"
    assert wrong.status_code == 401
    assert assert_error_shape(wrong.json(), "corral")["type"] == "authentication_error"


async def test_paths_are_normalized_before_auth_and_unknown_ones_are_404(
    engines: StartEngine, gateways: Gateways
) -> None:
    gw = await gateways.start([replica(engines())], api_keys=KEYS, metrics_require_key=True)
    for path in ("/v1/models", "//v1//models/", "/v1/./models", "/x/../v1/models",
                 "/v1/%6dodels", "/metrics", "/v1/../metrics"):  # fmt: skip
        response = await get(gw.url + path)
        assert response.status_code == 401, path
    assert (await get(gw.url + "/v1/models/", headers={"x-api-key": "sk-admin-123"})).is_success
    assert (await get(gw.url + "/health")).status_code == 200
    for path in ("/tokenize", "/v1/embeddings", "/debug/state", "/version", "/v1"):
        response = await get(gw.url + path, headers={"x-api-key": "sk-admin-123"})
        assert response.status_code == 404, path
        assert_error_shape(response.json(), "corral")


async def test_stored_keys_work_and_revocation_takes_effect(
    engines: StartEngine, gateways: Gateways, tmp_path: Path
) -> None:
    ledger = open_ledger(tmp_path / "ledger.sqlite3")
    store = KeyStore(ledger)
    created = store.create("ci", ["scripted"])
    gw = await gateways.start([replica(engines())], key_store=store)
    assert gw.gateway is not None
    gw.gateway.auth._refresh = 0.0  # re-read the store on every request in this test
    headers = {"Authorization": f"Bearer {created.key}"}
    assert (await get(gw.url + "/v1/models", headers=headers)).status_code == 200
    store.revoke("ci")
    assert (await get(gw.url + "/v1/models", headers=headers)).status_code == 401
    ledger.close()


async def test_beyond_loopback_without_keys_refuses_to_start() -> None:
    server = GatewayServer(StaticFleet([]), GatewaySettings(host="0.0.0.0"), port=0)
    with pytest.raises(ConfigError, match="without API keys"):
        await server.start()
    await server.stop()


async def test_insecure_no_auth_starts_with_a_loud_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = GatewaySettings(host="0.0.0.0", insecure_no_auth=True)
    server = GatewayServer(StaticFleet([]), settings, port=0)
    with caplog.at_level(logging.WARNING, logger="corral.gateway"):
        await server.start()
    await server.stop()
    assert any("NO API KEY" in r.getMessage() for r in caplog.records)


async def test_beyond_loopback_with_keys_starts() -> None:
    server = GatewayServer(StaticFleet([]), GatewaySettings(host="0.0.0.0", api_keys=KEYS), port=0)
    await server.start()
    assert server.port > 0
    await server.stop()


async def test_metrics_need_a_key_beyond_loopback() -> None:
    """Metrics carry key names, models and traffic: exposed, they are guarded like the API."""
    server = GatewayServer(StaticFleet([]), GatewaySettings(host="0.0.0.0", api_keys=KEYS), port=0)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        refused = await get(url)
        assert refused.status_code == 401
        assert_error_shape(refused.json(), "corral")
        allowed = await get(url, headers={"Authorization": "Bearer sk-admin-123"})
        assert allowed.status_code == 200
        assert "corral_gateway" in allowed.text
    finally:
        await server.stop()


async def test_port_in_use_names_the_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = GatewayServer(StaticFleet([]), GatewaySettings(), port=port)
        with pytest.raises(PortInUseError, match=f"port {port} is already in use"):
            await server.start()


async def test_request_error_shapes(engines: StartEngine, gateways: Gateways) -> None:
    limits = Limits(max_n=2, max_tokens=100)
    gw = await gateways.start([replica(engines(), limits=limits)], max_body_bytes=2048)
    cases: list[tuple[bytes | dict[str, Any], int, str | None]] = [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        ({"messages": HELLO}, 400, None),
        ({"model": "nope", "messages": HELLO}, 404, "model_not_found"),
        ({"model": "scripted", "messages": HELLO, "n": 3}, 400, None),
        ({"model": "scripted", "messages": HELLO, "max_tokens": 101}, 400, None),
        ({"model": "scripted", "messages": HELLO, "max_completion_tokens": 0}, 400, None),
        ({"model": "scripted", "messages": [{"role": "user", "content": "x" * 4000}]}, 413,
         "request_too_large"),
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=gw.url) as client:
        for body, status, code in cases:
            if isinstance(body, bytes):
                response = await client.post("/v1/chat/completions", content=body)
            else:
                response = await client.post("/v1/chat/completions", json=body)
            assert response.status_code == status, body
            error = assert_error_shape(response.json(), "corral")
            if code:
                assert error["code"] == code
    not_found = error_of(await get(gw.url + "/v1/models/nope"))
    assert "nope" in not_found["message"]


def value(text: str, series: str) -> float:
    """The value of one series in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in metrics")


def error_of(response: httpx.Response) -> dict[str, Any]:
    return assert_error_shape(response.json(), "corral")


async def test_unknown_model_names_the_models_that_exist(
    engines: StartEngine, gateways: Gateways
) -> None:
    gw = await gateways.start([replica(engines(), aliases=("default",))])
    async with sdk(gw.url) as client:
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model="gpt-4", messages=HELLO)
    assert "scripted, default" in str(info.value)


async def test_metric_values_after_known_traffic(engines: StartEngine, gateways: Gateways) -> None:
    eng = engines("--tokens", "5", "--reasoning-tokens", "2", "--itl", "0.01")
    gw = await gateways.start([replica(eng, aliases=("default",))], api_keys=KEYS)
    async with sdk(gw.url, "sk-small-456") as client:
        for _ in range(2):
            await client.chat.completions.create(model="default", messages=HELLO)
        stream = await client.chat.completions.create(model="default", messages=HELLO,
                                                      stream=True)  # fmt: skip
        chunks = [c async for c in stream]
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="scripted", messages=HELLO)
    text = (await get(gw.url + "/metrics")).text
    labels = 'deployment="scripted",model="default",key="small-only"'
    assert f'corral_gateway_requests_total{{{labels},status="200"}} 3' in text
    assert 'deployment="",model="",key="small-only",status="403"} 1' in text
    assert f"corral_gateway_completion_tokens_total{{{labels}}} 21" in text  # 3 x (5 + 2)
    assert f"corral_gateway_reasoning_tokens_total{{{labels}}} 6" in text
    assert f"corral_gateway_e2e_seconds_count{{{labels}}} 3" in text
    assert f"corral_gateway_time_to_first_token_seconds_count{{{labels}}} 3" in text
    assert len(chunks) == 7
    assert value(text, f"corral_gateway_inter_chunk_seconds_count{{{labels}}}") >= 1
    assert 'corral_gateway_in_flight{deployment="scripted"} 0' in text
    assert 'corral_gateway_replica_up{deployment="scripted"' in text


class BrokenFleet:
    """A fleet view that fails: the gateway must still answer in the OpenAI shape."""

    def deployments(self) -> list[Any]:
        raise RuntimeError("the fleet view broke")


async def test_an_unexpected_error_is_a_500_in_the_openai_shape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = GatewayServer(BrokenFleet(), GatewaySettings(), port=0)
    await server.start()
    try:
        with caplog.at_level(logging.ERROR, logger="corral.gateway"):
            reply = await get(f"http://127.0.0.1:{server.port}/v1/models")
    finally:
        await server.stop()
    assert reply.status_code == 500
    error = assert_error_shape(reply.json(), "corral")
    assert error["code"] == "internal_error"
    assert any("the fleet view broke" in (r.exc_text or "") for r in caplog.records)
