"""Forced tools on a deployment without tool calls (forced.py) and llama-server's tokenizer
routes in vLLM's shape (tokens.py), on a recorded llama-server stream and answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from corral.config import ApiSettings
from corral.gateway.apis import ApiFront
from corral.gateway.errors import HttpError
from corral.gateway.translate import tokens
from corral.gateway.translate.forced import ChatAsIs, Forced, ForcedTool
from corral.gateway.translate.messages import MessagesTranslation
from corral.gateway.translate.relay import TranslatingRelay

CAPTURE = Path(__file__).parents[1] / "fixtures" / "gateway" / "llama-server"
ADD = {
    "type": "object",
    "properties": {"numbers": {"type": "array", "items": {"type": "integer"}, "maxItems": 4}},
    "required": ["numbers"],
    "additionalProperties": False,
}
TOOLS = [{"name": "add", "description": "Add integers", "input_schema": ADD},
         {"name": "Read", "input_schema": {"type": "object"}}]  # fmt: skip


def messages_body(choice: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 60, "tools": TOOLS, "tool_choice": choice,
            "messages": [{"role": "user", "content": "Add 2 and 3."}], **extra}  # fmt: skip


def forced(choice: dict[str, Any], **extra: Any) -> Forced:
    inner = MessagesTranslation(messages_body(choice, **extra), "m")
    tool = ForcedTool.of(inner.chat_request())
    assert tool is not None
    return Forced(inner, tool)


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines and lines["data"] != "[DONE]":
            out.append((lines.get("event", ""), json.loads(lines["data"])))
    return out


def test_a_named_tool_becomes_a_json_schema_request() -> None:
    body = forced({"type": "tool", "name": "add"}).chat_request()
    assert "tools" not in body
    assert "tool_choice" not in body
    assert body["response_format"]["json_schema"]["schema"] == ADD
    assert "`add`" in body["messages"][0]["content"]


def test_any_of_several_tools_asks_for_name_and_arguments() -> None:
    schema = forced({"type": "any"}).chat_request()["response_format"]["json_schema"]["schema"]
    names = [branch["properties"]["name"]["const"] for branch in schema["anyOf"]]
    assert names == ["add", "Read"]
    assert schema["anyOf"][0]["properties"]["arguments"] == ADD


def test_a_tool_choice_naming_no_tool_is_a_400() -> None:
    with pytest.raises(HttpError) as refused:
        forced({"type": "tool", "name": "nope"})
    assert refused.value.status == 400
    assert refused.value.param == "tool_choice"


def test_a_whole_json_answer_becomes_a_tool_use_block() -> None:
    answer = {"choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": '{"name": "add", "arguments": {"numbers": [2, 3]}}'}}],
        "usage": {"prompt_tokens": 37, "completion_tokens": 20}}  # fmt: skip
    message = forced({"type": "any"}).from_chat(answer)
    (use,) = message["content"]
    assert use["type"] == "tool_use"
    assert use["name"] == "add"
    assert use["input"] == {"numbers": [2, 3]}
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize("choice", [{"type": "tool", "name": "add"}, {"type": "any"}])
def test_the_recorded_llama_server_stream_becomes_anthropics_tool_use_events(
    choice: dict[str, Any],
) -> None:
    raw = (CAPTURE / "forced_tool_stream.txt").read_text().split("\n", 1)[1].encode()
    if choice["type"] == "any":  # the same stream, as the several-tools schema would give
        text = "".join(c["choices"][0]["delta"].get("content") or "" for _, c in
                       sse_events(raw) if c.get("choices"))  # fmt: skip
        raw = _one_chunk(json.dumps({"name": "add", "arguments": json.loads(text)}))
    relay = TranslatingRelay(forced(choice, stream=True).writer())
    events = sse_events(relay.feed(raw) + relay.finish())
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    start = next(body for kind, body in events if kind == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    assert start["content_block"]["name"] == "add"
    arguments = "".join(body["delta"]["partial_json"] for kind, body in events
                        if kind == "content_block_delta")  # fmt: skip
    jsonschema.validate(json.loads(arguments), ADD)
    stop = next(body for kind, body in events if kind == "message_delta")
    assert stop["delta"]["stop_reason"] == "tool_use"


def _one_chunk(text: str) -> bytes:
    chunks = [{"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]  # fmt: skip
    return (
        b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    )


CHAT_TOOLS = [{"type": "function", "function": {"name": "add", "description": "Add integers",
                                               "parameters": ADD}}]  # fmt: skip


def chat_body(choice: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 60, "tools": CHAT_TOOLS, "tool_choice": choice,
            "messages": [{"role": "user", "content": "Add 2 and 3."}], **extra}  # fmt: skip


def test_a_forced_chat_tool_on_a_model_without_tools_is_answered_as_json() -> None:
    front = ApiFront(ApiSettings())
    named = {"type": "function", "function": {"name": "add"}}
    translation = front.prepare("chat", "llama-server", chat_body(named), "m", tools=False)
    assert isinstance(translation, Forced)
    body = translation.chat_request()
    assert "tools" not in body
    assert body["response_format"]["json_schema"]["schema"] == ADD
    # an optional tool, a model that calls tools, another API's pass-through: unchanged
    assert front.prepare("chat", "llama-server", chat_body("auto"), "m", tools=False) is None
    assert front.prepare("chat", "vllm", chat_body(named), "m", tools=True) is None
    assert front.prepare("completions", "llama-server", {"prompt": "x"}, "m", tools=False) is None


def test_a_whole_chat_json_answer_becomes_a_tool_call() -> None:
    translation = Forced(ChatAsIs(chat_body("required"), "m"), ForcedTool(CHAT_TOOLS, None))
    answer = {"id": "c1", "object": "chat.completion", "model": "m", "created": 1,
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": '{"numbers": [2, 3]}'}}],
              "usage": {"prompt_tokens": 37, "completion_tokens": 9}}  # fmt: skip
    out = translation.from_chat(answer)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "add"
    jsonschema.validate(json.loads(call["function"]["arguments"]), ADD)
    assert choice["message"]["content"] is None
    assert choice["message"]["refusal"] is None  # strict: the schema requires it
    assert choice["logprobs"] is None


@pytest.mark.parametrize("usage", [True, False])
def test_the_recorded_llama_server_stream_becomes_chat_tool_call_deltas(usage: bool) -> None:
    raw = (CAPTURE / "forced_tool_stream.txt").read_text().split("\n", 1)[1].encode()
    # the usage chunk llama-server sends last when the gateway asks for it (it always does)
    usage_chunk = b'data: {"choices":[],"usage":{"prompt_tokens":37,"completion_tokens":28}}\n\n'
    raw = raw.replace(b"data: [DONE]", usage_chunk + b"data: [DONE]")
    named = {"type": "function", "function": {"name": "add"}}
    options = {"stream_options": {"include_usage": True}} if usage else {}
    body = chat_body(named, stream=True, **options)
    relay = TranslatingRelay(Forced(ChatAsIs(body, "asked"), ForcedTool.of(body)).writer())  # type: ignore[arg-type]
    out = relay.feed(raw) + relay.finish()
    assert out.endswith(b"data: [DONE]\n\n")
    chunks = [c for _, c in sse_events(out)]
    assert {c["model"] for c in chunks if "model" in c} == {"asked"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    assert not any(d.get("content") for d in deltas)
    calls = [call for d in deltas for call in d.get("tool_calls") or ()]
    assert calls[0]["function"]["name"] == "add"
    assert calls[0]["id"].startswith("call_")
    jsonschema.validate(json.loads("".join(c["function"]["arguments"] for c in calls)), ADD)
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")]
    assert finishes[-1] == "stop"  # a named tool: what vLLM and OpenAI answer
    assert any(c.get("usage") for c in chunks) is usage


def test_a_broken_forced_chat_stream_ends_with_an_error_event() -> None:
    body = chat_body("required", stream=True)
    relay = TranslatingRelay(Forced(ChatAsIs(body, "m"), ForcedTool(CHAT_TOOLS, None)).writer())
    out = relay.feed(b'data: {"choices": [{"index": 0, "delta": {"content": "{\\"num"}}]}\n\n')
    out += relay.cut(502, "the engine dropped the connection", "engine_disconnected")
    events = [c for _, c in sse_events(out)]
    assert events[-1]["error"]["code"] == "engine_disconnected"
    assert out.endswith(b"data: [DONE]\n\n")


def test_llama_servers_tokenize_in_vllms_shape() -> None:
    shape = tokens.for_engine("llama-server", "/tokenize", 4096)
    assert shape is not None
    asked = shape.request({"model": "m", "prompt": "Hello world", "return_token_strs": True})
    assert asked == {"content": "Hello world", "add_special": True, "with_pieces": True}
    # measured: llama-server's answer to that body
    answer = shape.answer(
        {"tokens": [{"id": 19556, "piece": "Hello"}, {"id": 905, "piece": " world"}]}
    )
    assert answer == {"count": 2, "max_model_len": 4096, "tokens": [19556, 905],
                      "token_strs": ["Hello", " world"]}  # fmt: skip


def test_llama_servers_own_tokenize_body_is_accepted() -> None:
    shape = tokens.for_engine("llama-server", "/tokenize", 4096)
    assert shape is not None
    asked = shape.request({"model": "m", "content": "Hello", "add_special": True})
    assert asked == {"content": "Hello", "add_special": True, "with_pieces": False}
    assert shape.request({"model": "m", "content": "Hello"})["add_special"] is False
    assert shape.answer({"tokens": [19556]})["tokens"] == [19556]


def test_llama_servers_detokenize_and_its_refusals() -> None:
    shape = tokens.for_engine("llama-server", "/detokenize", 4096)
    assert shape is not None
    assert shape.request({"model": "m", "tokens": [19556, 905]}) == {"tokens": [19556, 905]}
    assert shape.answer({"content": "Hello world"}) == {"prompt": "Hello world"}
    with pytest.raises(HttpError) as bad:
        shape.request({"model": "m", "tokens": "19556"})
    assert bad.value.param == "tokens"
    chat = tokens.for_engine("llama-server", "/tokenize", 4096)
    assert chat is not None
    with pytest.raises(HttpError) as refused:
        chat.request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.value.param == "messages"


def test_other_engines_and_routes_pass_through() -> None:
    assert tokens.for_engine("vllm", "/tokenize", 4096) is None
    assert tokens.for_engine("llama-server", "/v1/chat/completions", 4096) is None
