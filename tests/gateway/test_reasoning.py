"""gpt-oss tool turns: reasoning put back when a client drops it; HarmonyError retried once.

Exchanges: tests/fixtures/gateway/gpt-oss/exchanges.json (written from the harmony format
spec and vLLM's harmony_utils; see its .source.txt). What the engine makes of a restored
turn is checked with vLLM's own parser (`parse_chat_input_to_harmony_message`, installed
with vLLM 0.32): the turn gains its `analysis` message.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from corral.config import Capabilities
from corral.gateway.sse import SseRelay
from corral.gateway.translate.store import ReasoningMemory
from tests.gateway.conftest import Gateways, replica

EXCHANGES: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "fixtures/gateway/gpt-oss/exchanges.json").read_text()
)


def harmony_channels(message: dict[str, Any]) -> list[str]:
    with warnings.catch_warnings():  # torch's own deprecation warnings on import
        warnings.simplefilter("ignore")
        from vllm.entrypoints.openai.parser.harmony_utils import (
            parse_chat_input_to_harmony_message,
        )

    return [str(m.channel) for m in parse_chat_input_to_harmony_message(message)]


def test_restored_turn_gives_the_engine_its_analysis_message() -> None:
    memory = ReasoningMemory(100, 3600.0)
    memory.remember(EXCHANGES["tool_turn_answer"]["choices"][0]["message"])
    request = copy.deepcopy(EXCHANGES["follow_up_without_reasoning"])
    turn = request["messages"][1]
    assert "analysis" not in harmony_channels(turn)  # what the engine sees without help
    assert memory.restore(request["messages"]) == 1
    assert turn["reasoning"].startswith("The user wants the weather")
    assert harmony_channels(turn)[0] == "analysis"


def test_streamed_turn_is_remembered_from_its_chunks() -> None:
    relay = SseRelay("gpt-oss", wants_usage=False, observe=True, served="gpt-oss-120b")
    raw = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n"
                   for c in EXCHANGES["tool_turn_stream"])  # fmt: skip
    relay.feed(raw + b"data: [DONE]\n\n")
    assert relay.answer is not None
    message = relay.answer.message()
    memory = ReasoningMemory(100, 3600.0)
    memory.remember(message)
    follow = [{"role": "assistant", "content": None, "tool_calls": message["tool_calls"]}]
    assert memory.restore(follow) == 1
    assert follow[0]["reasoning"] == "Need the weather in Paris: call get_weather."


def test_memory_is_bounded_and_a_turn_with_reasoning_is_left_alone() -> None:
    memory = ReasoningMemory(2, 3600.0)
    for n in range(3):
        memory.put(f"call-{n}", f"thought {n}")
    assert len(memory) == 2
    assert memory.get("call-0") is None
    kept = {"role": "assistant", "reasoning": "mine", "tool_calls": [{"id": "call-2"}]}
    assert memory.restore([kept]) == 0
    assert kept["reasoning"] == "mine"


# -- HarmonyError: a small engine that fails as vLLM does, then answers --------------------
@pytest.fixture
async def harmony_engine() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An aiohttp engine: the first `fail` answers are vLLM's HarmonyError 400."""
    seen: list[dict[str, Any]] = []
    state = {"fail": 1}

    async def chat(request: web.Request) -> web.Response:
        seen.append(await request.json())
        if state["fail"] > 0:
            state["fail"] -= 1
            return web.json_response(EXCHANGES["harmony_error"], status=400)
        return web.json_response(EXCHANGES["tool_turn_answer"])

    async def set_fail(request: web.Request) -> web.Response:
        state["fail"] = int(request.query["n"])
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/fail", set_fail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_harmony_error_is_retried_once_then_reported(
    harmony_engine: tuple[str, list[dict[str, Any]]], gateways: Gateways
) -> None:
    base_url, seen = harmony_engine
    reasoning = Capabilities(reasoning=True)
    server = await gateways.start([replica(base_url, name="gpt-oss", capabilities=reasoning)])
    body = EXCHANGES["follow_up_without_reasoning"] | {"model": "gpt-oss"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        first = await client.post("/v1/chat/completions", json=body)
        await client.post(base_url + "/fail?n=2")
        second = await client.post("/v1/chat/completions", json=body)
        third = await client.post("/v1/chat/completions", json=body)
    assert first.status_code == 200  # failed once, retried, answered
    assert len(seen) == 5  # 2 (retried) + 2 (both failed) + 1
    assert second.status_code == 502
    assert second.json()["error"]["code"] == "harmony_error"
    # The answer of the first exchange was remembered: later requests get its reasoning.
    assert third.status_code == 200
    assert seen[-1]["messages"][1]["reasoning"].startswith("The user wants the weather")
