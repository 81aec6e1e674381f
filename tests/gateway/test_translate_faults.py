"""Translated streams whose engine breaks: the client gets its API's own error event, then
the connection closes (scripted engine: a crash mid-stream, gpt-oss's HarmonyError event)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from corral.config import ApiSettings
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
