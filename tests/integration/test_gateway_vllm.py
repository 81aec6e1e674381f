"""The gateway in front of the REAL vLLM CPU engine: cancellation and normalization.

Cancellation is the behaviour the issue defines with a bound: when the client leaves, the
engine's `vllm:num_requests_running` drops within a second, streaming or not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from corral.config import Capabilities, GatewaySettings
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer
from tests.support.vllm import LiveEngine

pytestmark = pytest.mark.integration

LONG = {
    "messages": [{"role": "user", "content": "Count from one to one thousand."}],
    "max_tokens": 2000,
    "ignore_eos": True,  # a vLLM sampling extension: keeps the engine busy until cancelled
}


@pytest.fixture
async def gateway(vllm_engine: LiveEngine) -> AsyncIterator[GatewayServer]:
    caps = Capabilities(context_length=4096)
    policy = Policy(vllm_engine.served_name, aliases=("default",), capabilities=caps)
    replica = Replica(
        "vllm-0", vllm_engine.served_name, vllm_engine.base_url, routable=True, state="ready"
    )
    server = GatewayServer(StaticFleet.of([(policy, replica)]), GatewaySettings(), port=0)
    await server.start()
    yield server
    await server.stop()


async def running(engine: LiveEngine) -> float:
    """vllm:num_requests_running summed over its label sets."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(engine.base_url + "/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:num_requests_running")
    )


async def seconds_until_idle(engine: LiveEngine, limit: float = 10.0) -> float:
    left = time.monotonic()
    while time.monotonic() - left < limit:
        if await running(engine) == 0:
            return time.monotonic() - left
        await asyncio.sleep(0.05)
    return float("inf")


async def wait_running(engine: LiveEngine) -> None:
    for _ in range(200):
        if await running(engine) >= 1:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the engine never showed the request running")


async def test_stream_client_leaving_aborts_the_engine_request(
    vllm_engine: LiveEngine, gateway: GatewayServer
) -> None:
    body = {"model": "default", "stream": True, **LONG}
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=60) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_lines()  # kept referenced: see test_proxy's cancellation test
        seen = 0
        while seen < 5:
            seen += (await anext(lines)).startswith("data: ")
        assert await running(vllm_engine) == 1
    elapsed = await seconds_until_idle(vllm_engine)  # the client left as the block closed
    print(f"stream: engine idle {elapsed:.3f} s after the client left")
    assert elapsed < 1.0


async def test_whole_answer_client_leaving_aborts_the_engine_request(
    vllm_engine: LiveEngine, gateway: GatewayServer
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        pending = asyncio.ensure_future(
            client.post("/v1/chat/completions", json={"model": "default", **LONG})
        )
        await wait_running(vllm_engine)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
    elapsed = await seconds_until_idle(vllm_engine)
    print(f"non-streamed: engine idle {elapsed:.3f} s after the client left")
    assert elapsed < 1.0


async def test_real_engine_through_the_sdk_by_alias(
    vllm_engine: LiveEngine, gateway: GatewayServer
) -> None:
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="x") as client:
        whole = await client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8
        )
        stream = await client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            stream=True,
        )
        chunks = [c async for c in stream]
        with_usage = await client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
        usage_chunks = [c async for c in with_usage]
    assert whole.model == "default"
    assert whole.usage is not None
    assert whole.usage.completion_tokens <= 8
    assert all(c.model == "default" for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert usage_chunks[-1].usage is not None
    assert gateway.gateway is not None
    text = gateway.gateway.metrics.render()
    assert "corral_gateway_completion_tokens_total" in text
    assert vllm_engine.served_name in text
