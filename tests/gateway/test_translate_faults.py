"""Translated streams whose engine breaks: the client gets its API's own error event, then
the connection closes (scripted engine: a crash mid-stream, gpt-oss's HarmonyError event)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from corral.config import ApiKey, ApiSettings, KeyLimits
from tests.gateway.conftest import Gateways, StartEngine, replica

BODIES = {
    "/v1/responses": {"model": "scripted", "input": "hi", "stream": True},
    "/v1/messages": {"model": "scripted", "max_tokens": 32, "stream": True,
                     "messages": [{"role": "user", "content": "hi"}]},
}  # fmt: skip


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.split("\n\n"):
        if block.startswith("event: "):
            kind, data = block.split("\n", 1)
            out.append((kind[7:], json.loads(data.removeprefix("data: "))))
    return out


@pytest.mark.parametrize("path", sorted(BODIES))
@pytest.mark.parametrize("fault", [("--crash-after-chunks", "3"), ("--quirk", "harmony-error")])
async def test_broken_translated_stream_ends_with_the_apis_error_event(
    engines: StartEngine, gateways: Gateways, path: str, fault: tuple[str, str]
) -> None:
    engine = engines("--tokens", "20", "--itl", "0.01", *fault)
    apis = ApiSettings(responses="translate", messages="translate")
    gw = await gateways.start([replica(engine)], apis=apis)
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        response = await client.post(path, json=BODIES[path])
    got = events(response.text)
    assert response.status_code == 200
    last_kind, last = got[-1]
    assert last_kind == "error"  # nothing after it: no completed/stop event, no [DONE]
    assert "[DONE]" not in response.text
    if path == "/v1/messages":
        assert got[0][0] == "message_start"
        assert last["error"]["type"] == "api_error"
    else:
        assert got[0][0] == "response.created"
        assert last["code"] in ("engine_disconnected", "engine_error", "500")
    kinds = [kind for kind, _ in got]
    assert "message_stop" not in kinds
    assert "response.completed" not in kinds


async def test_a_key_over_its_limit_mid_stream_finishes_and_the_next_is_refused(
    engines: StartEngine, gateways: Gateways
) -> None:
    """The stream that takes a key past its tokens per minute ends normally; the next
    request is the one refused (429, Retry-After), in the OpenAI and Anthropic shapes."""
    engine = engines("--tokens", "20", "--itl", "0.01")
    key = ApiKey(name="team", key="sk-team", limits=KeyLimits(tokens_per_minute=10))
    gw = await gateways.start([replica(engine)], api_keys=[key])
    headers = {"Authorization": "Bearer sk-team"}
    chat = {"model": "scripted", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as client:
        streamed = await client.post("/v1/chat/completions", json=chat)
        refused = await client.post(
            "/v1/chat/completions", json={**chat, "stream": False, "stream_options": None}
        )
        anthropic = await client.post("/v1/messages", json=BODIES["/v1/messages"])
    chunks = [json.loads(line[6:]) for line in streamed.text.splitlines()
              if line.startswith("data: {")]  # fmt: skip
    assert streamed.status_code == 200
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert chunks[-1]["usage"]["completion_tokens"] == 20
    assert refused.status_code == 429
    assert refused.json()["error"]["param"] == "tokens_per_minute"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert anthropic.status_code == 429
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
