"""The gateway in front of scripted engines (real subprocesses on loopback), openai SDK client.

Covers routing and /v1/models, normalization in both directions (streaming too), usage
handling, field stripping, the error shapes, and cancellation on the scripted engine.
"""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from corral.config import Capabilities, Limits, Role
from tests.gateway.conftest import Gateways, StartEngine, replica

pytestmark = pytest.mark.timeout(120)

HELLO = [{"role": "user", "content": "hi"}]


def sdk(url: str, key: str = "none") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


async def engine_state(base_url: str) -> dict[str, object]:
    async with httpx.AsyncClient() as client:
        data: dict[str, object] = (await client.get(base_url + "/debug/state")).json()
        return data


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
async def test_whole_answer_carries_both_reasoning_fields_and_the_asked_name(
    engines: StartEngine, gateways: Gateways, field: str
) -> None:
    eng = engines("--tokens", "3", "--reasoning-tokens", "2", "--reasoning-field", field)
    gw = await gateways.start([replica(eng, aliases=("default",))])
    async with sdk(gw.url) as client:
        answer = await client.chat.completions.create(model="default", messages=HELLO)
    message = answer.choices[0].message.model_dump()
    assert answer.model == "default"
    assert message["reasoning"] == message["reasoning_content"] == "think think "
    assert message["content"] == "tok tok tok "


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
async def test_stream_deltas_carry_both_reasoning_fields_and_no_unasked_usage(
    engines: StartEngine, gateways: Gateways, field: str
) -> None:
    eng = engines("--tokens", "3", "--reasoning-tokens", "2", "--reasoning-field", field)
    gw = await gateways.start([replica(eng, aliases=("default",))])
    async with sdk(gw.url) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta.model_dump() for c in chunks]
    assert all(c.model == "default" for c in chunks)
    assert [d["reasoning"] for d in deltas[:2]] == ["think ", "think "]
    assert [d["reasoning_content"] for d in deltas[:2]] == ["think ", "think "]
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # the usage-only chunk was dropped
    sent = (await engine_state(eng.base_url))["last_body"]
    assert isinstance(sent, dict)
    assert sent["stream_options"] == {"include_usage": True}  # asked of the engine anyway


async def test_stream_usage_kept_when_the_client_asks(
    engines: StartEngine, gateways: Gateways
) -> None:
    eng = engines("--tokens", "4")
    gw = await gateways.start([replica(eng)])
    async with sdk(gw.url) as client:
        stream = await client.chat.completions.create(
            model="scripted", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


async def test_completions_stream_and_whole(engines: StartEngine, gateways: Gateways) -> None:
    eng = engines("--tokens", "3")
    gw = await gateways.start([replica(eng, aliases=("small",))])
    async with sdk(gw.url) as client:
        whole = await client.completions.create(model="small", prompt="Once")
        stream = await client.completions.create(model="small", prompt="Once", stream=True)
        texts = [c.choices[0].text async for c in stream]
    assert whole.model == "small"
    assert whole.choices[0].text == "tok tok tok "
    assert "".join(texts) == "tok tok tok "


async def test_engine_only_fields_are_dropped_unless_allowed(
    engines: StartEngine, gateways: Gateways
) -> None:
    strict, lenient = engines(model="strict"), engines(model="lenient")
    gw = await gateways.start(
        [
            replica(strict, name="strict", aliases=("s",)),
            replica(
                lenient, name="lenient", limits=Limits(allowed_fields=["chat_template_kwargs"])
            ),
        ]
    )
    extra = {"chat_template_kwargs": {"enable_thinking": True}, "priority": -100}
    async with sdk(gw.url) as client:
        await client.chat.completions.create(model="s", messages=HELLO, extra_body=extra)
        await client.chat.completions.create(model="lenient", messages=HELLO, extra_body=extra)
    to_strict = (await engine_state(strict.base_url))["last_body"]
    to_lenient = (await engine_state(lenient.base_url))["last_body"]
    assert isinstance(to_strict, dict)
    assert isinstance(to_lenient, dict)
    assert to_strict["model"] == "strict"  # the alias became the served name
    assert "chat_template_kwargs" not in to_strict
    assert "priority" not in to_strict
    assert to_lenient["chat_template_kwargs"] == {"enable_thinking": True}
    assert "priority" not in to_lenient


async def test_models_lists_names_aliases_and_roles(
    engines: StartEngine, gateways: Gateways
) -> None:
    small, big = engines(model="small"), engines(model="big")
    gw = await gateways.start(
        [
            replica(small, name="small", aliases=("default",)),
            replica(big, name="big", capabilities=Capabilities(context_length=32768, tools=True)),
        ],
        roles={"architect": Role(min_context=16000, tools=True), "thinker": Role(reasoning=True)},
    )
    async with sdk(gw.url) as client:
        cards = {m.id: m.model_dump() for m in (await client.models.list()).data}
        one = await client.models.retrieve("architect")
    assert set(cards) == {"small", "big", "default", "architect", "thinker"}
    assert cards["default"]["corral"] == {
        "kind": "alias", "resolves_to": ["small"], "routable": True, "context_length": 4096
    }  # fmt: skip
    assert cards["architect"]["corral"]["resolves_to"] == ["big"]
    assert cards["thinker"]["corral"]["routable"] is False
    assert one.id == "architect"


async def test_role_routes_only_to_a_replica_that_meets_it(
    engines: StartEngine, gateways: Gateways
) -> None:
    small, big = engines(model="small"), engines(model="big")
    gw = await gateways.start(
        [
            replica(small, name="small"),
            replica(big, name="big", capabilities=Capabilities(context_length=32768)),
        ],
        roles={"architect": Role(min_context=16000), "thinker": Role(reasoning=True)},
    )
    async with sdk(gw.url) as client:
        for _ in range(3):
            answer = await client.chat.completions.create(model="architect", messages=HELLO)
            assert answer.model == "architect"
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="thinker", messages=HELLO)
    assert info.value.status_code == 503
    assert (await engine_state(big.base_url))["requests"] == 3
    assert (await engine_state(small.base_url))["requests"] == 0


async def test_replicas_share_load(engines: StartEngine, gateways: Gateways) -> None:
    one, two = engines("--ttft", "1.0"), engines("--ttft", "1.0")
    gw = await gateways.start([replica(one, rid="a"), replica(two, rid="b")])
    async with sdk(gw.url) as client:
        await asyncio.gather(
            *(client.chat.completions.create(model="scripted", messages=HELLO) for _ in range(6))
        )
    assert (await engine_state(one.base_url))["requests"] == 3
    assert (await engine_state(two.base_url))["requests"] == 3


async def test_client_leaving_closes_the_engine_request(
    engines: StartEngine, gateways: Gateways
) -> None:
    eng = engines("--tokens", "400", "--itl", "0.05")
    gw = await gateways.start([replica(eng)])
    async with httpx.AsyncClient(base_url=gw.url) as client:
        body = {"model": "scripted", "messages": HELLO, "stream": True}
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            # Keep the iterator referenced: breaking out of `async for` lets httpx finalize
            # the generator, which closes the response, i.e. the client leaves early.
            lines = response.aiter_lines()
            assert (await anext(lines)).startswith('data: {"id"')
            assert (await engine_state(eng.base_url))["running"] == 1
        await _until(lambda: _running(eng.base_url), 0)
        nonstream = asyncio.ensure_future(
            client.post("/v1/chat/completions", json={"model": "scripted", "messages": HELLO})
        )
        await _until(lambda: _running(eng.base_url), 1)
        nonstream.cancel()
        await _until(lambda: _running(eng.base_url), 0)
    assert gw.gateway is not None
    assert gw.gateway.admission.gates["scripted"].in_flight == 0


async def _running(base_url: str) -> int:
    value = (await engine_state(base_url))["running"]
    assert isinstance(value, int)
    return value


async def _until(probe: object, want: int, attempts: int = 100) -> None:
    """Poll `probe()` (an async callable) until it returns `want` (about 5 s at most)."""
    got = None
    for _ in range(attempts):
        got = await probe()  # type: ignore[operator]
        if got == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"wanted {want}, still {got}")


async def test_responses_and_messages_reach_the_engine(
    engines: StartEngine, gateways: Gateways
) -> None:
    """Passed through: the scripted engine serves neither, so its own 404 comes back."""
    gw = await gateways.start([replica(engines(), aliases=("default",))])
    async with httpx.AsyncClient(base_url=gw.url) as client:
        for path in ("/v1/responses", "/v1/messages"):
            response = await client.post(path, json={"model": "default", "input": "hi"})
            assert response.status_code == 404
            assert response.json()["error"]["source"] == "engine"
            # Anthropic's shape on /v1/messages, OpenAI's elsewhere
            assert ("type" in response.json()) == (path == "/v1/messages")
