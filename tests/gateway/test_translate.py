"""Responses and Messages translation on recorded answers (vLLM 0.32 captures, gpt-oss)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.gateway.errors import HttpError
from corral.gateway.translate.messages import MessagesTranslation, error_from_openai
from corral.gateway.translate.relay import TranslatingRelay
from corral.gateway.translate.responses import ResponsesTranslation
from corral.gateway.translate.store import ResponseStore

FIXTURES = Path(__file__).parents[1] / "fixtures" / "gateway"


def capture(name: str) -> str:
    return (FIXTURES / "vllm-0.32" / f"{name}.txt").read_text().split("\n", 1)[1]


def sse_bytes(name: str) -> bytes:
    return capture(name).encode()


def gpt_oss() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "gpt-oss" / "exchanges.json").read_text())
    return data


def captured_arguments() -> dict[str, Any]:
    message = json.loads(capture("chat_tool"))["choices"][0]["message"]
    arguments: dict[str, Any] = json.loads(message["tool_calls"][0]["function"]["arguments"])
    return arguments


def runs(kinds: list[str]) -> list[str]:
    """Event kinds with repeats collapsed (streams differ in how many deltas they have)."""
    return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block.strip():
            kind, data = block.split("\n", 1)
            out.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def store() -> ResponseStore:
    return ResponseStore(10, 60.0)


# -- Responses ---------------------------------------------------------------------------
def test_responses_input_items_become_chat_messages() -> None:
    payload = {
        "model": "m", "instructions": "Be brief.", "max_output_tokens": 20,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Add 2 and 3"}]},
            {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text",
                                                               "text": "use add"}]},
            {"type": "function_call", "call_id": "c1", "name": "add", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "5"},
        ],
        "tools": [{"type": "function", "name": "add", "parameters": {"type": "object"}}],
        "tool_choice": "required",
    }  # fmt: skip
    chat = ResponsesTranslation(payload, "m", store()).chat_request()
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
    assert chat["messages"][2]["reasoning"] == "use add"
    assert chat["messages"][2]["tool_calls"][0]["id"] == "c1"
    assert chat["max_tokens"] == 20
    assert chat["tools"][0]["function"]["strict"] is True
    # `required` with one tool is that tool by name: the engine then enforces its schema
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "add"}}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "computer_call"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
         "input[0].content[0].type"),
        ({"input": "hi", "previous_response_id": "resp_gone"}, "previous_response_id"),
        ({"input": "hi", "conversation": "c"}, "conversation"),
    ],
)  # fmt: skip
def test_responses_bodies_it_cannot_map_are_400s_naming_the_field(
    payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(HttpError) as refused:
        ResponsesTranslation({"model": "m", **payload}, "m", store())
    assert refused.value.status == 400
    assert refused.value.param == field


def test_responses_answer_and_previous_response_id() -> None:
    retained = store()
    first = ResponsesTranslation({"model": "m", "input": "Add 2 and 3"}, "default", retained)
    answer = first.from_chat(json.loads(capture("chat_tool")))
    assert answer["model"] == "default"
    call = next(item for item in answer["output"] if item["type"] == "function_call")
    assert json.loads(call["arguments"]) == captured_arguments()
    follow = {"model": "m", "previous_response_id": answer["id"],
              "input": [{"type": "function_call_output", "call_id": call["call_id"],
                         "output": "5"}]}  # fmt: skip
    chat = ResponsesTranslation(follow, "default", retained).chat_request()
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["user", "assistant", "tool"]
    assert chat["messages"][1]["tool_calls"][0]["id"] == call["call_id"]


def test_responses_stream_events_in_vllms_order() -> None:
    translation = ResponsesTranslation({"model": "m", "input": "hi"}, "default", store())
    relay = TranslatingRelay(translation.writer())
    raw = relay.feed(sse_bytes("chat_stream")) + relay.finish()
    kinds = [kind for kind, _ in events(raw)]
    native = [kind for kind, _ in events(sse_bytes("responses_stream"))]
    assert runs(kinds) == runs(native)  # the same event sequence as vLLM's own /v1/responses
    seqs = [body["sequence_number"] for _, body in events(raw)]
    assert seqs == list(range(len(seqs)))
    final = events(raw)[-1][1]["response"]
    assert final["usage"]["output_tokens"] == relay.tokens.completion > 0


def test_responses_streamed_tool_call() -> None:
    translation = ResponsesTranslation({"model": "m", "input": "hi"}, "default", store())
    relay = TranslatingRelay(translation.writer())
    got = events(relay.feed(sse_bytes("chat_tool_stream")) + relay.finish())
    done = [body for kind, body in got if kind == "response.function_call_arguments.done"]
    assert json.loads(done[0]["arguments"])["numbers"]
    assert got[-1][1]["response"]["output"][0]["type"] == "function_call"


def test_a_broken_stream_ends_with_the_apis_error_event() -> None:
    translation = ResponsesTranslation({"model": "m", "input": "hi"}, "default", store())
    relay = TranslatingRelay(translation.writer())
    head = sse_bytes("chat_stream").split(b"\n\n")[1] + b"\n\n"
    got = events(relay.feed(head) + relay.cut(502, "engine died", "engine_disconnected"))
    assert got[-1] == ("error", {"type": "error", "code": "engine_disconnected",
                                 "message": "engine died", "param": None,
                                 "sequence_number": len(got) - 1})  # fmt: skip
    assert relay.finish() == b""  # nothing after the error


# -- Messages ----------------------------------------------------------------------------
def test_messages_request_maps_system_blocks_tools_and_results() -> None:
    payload = {
        "model": "m", "max_tokens": 50,
        "system": [{"type": "text", "text": "A."}, {"type": "text", "text": "B."}],
        "tools": [{"name": "Read", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "messages": [
            {"role": "user", "content": "read it"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "need Read", "signature": "s"},
                {"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "a"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1",
                 "content": [{"type": "text", "text": "hello"}]},
                {"type": "text", "text": "and?"}]},
        ],
    }  # fmt: skip
    chat = MessagesTranslation(payload, "m").chat_request()
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert chat["messages"][0]["content"] == "A.\n\nB."
    assert chat["messages"][2]["reasoning"] == "need Read"
    assert json.loads(chat["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {
        "file_path": "a"
    }
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "hello"}
    assert chat["tools"][0]["function"]["strict"] is True
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "Read"}}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type"),
        ({"messages": [{"role": "user", "content": [{"type": "document"}]}]},
         "messages[0].content[0].type"),
        ({"system": [{"type": "image"}]}, "system[0].type"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ],
)  # fmt: skip
def test_messages_bodies_it_cannot_map_are_400s_naming_the_field(
    payload: dict[str, Any], field: str
) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(HttpError) as refused:
        MessagesTranslation({**body, **payload}, "m")
    assert refused.value.param == field
    shaped = json.loads(error_from_openai(400, refused.value.body()))
    assert shaped["type"] == "error"
    assert field in shaped["error"]["message"]


def test_messages_answer_from_a_forced_tool_call() -> None:
    translation = MessagesTranslation({"model": "m", "max_tokens": 60, "messages": []}, "d")
    answer = translation.from_chat(json.loads(capture("chat_tool")))
    use = answer["content"][-1]
    assert use["type"] == "tool_use"
    assert use["input"] == captured_arguments()
    assert answer["stop_reason"] == "tool_use"  # vLLM says "stop" for a forced tool
    assert answer["usage"]["input_tokens"] > 0


def test_messages_stream_follows_anthropics_event_order() -> None:
    translation = MessagesTranslation({"model": "m", "max_tokens": 60, "messages": []}, "d")
    relay = TranslatingRelay(translation.writer())
    got = events(relay.feed(sse_bytes("chat_tool_stream")) + relay.finish())
    kinds = [kind for kind, _ in got]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1] == "content_block_start"
    assert got[1][1]["content_block"]["type"] == "tool_use"
    partial = "".join(b["delta"]["partial_json"] for k, b in got if k == "content_block_delta")
    assert json.loads(partial)["numbers"]
    assert got[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert got[-2][1]["usage"]["output_tokens"] > 0


def test_messages_text_stream_matches_vllms_own_order() -> None:
    translation = MessagesTranslation({"model": "m", "max_tokens": 5, "messages": []}, "d")
    relay = TranslatingRelay(translation.writer())
    kinds = [k for k, _ in events(relay.feed(sse_bytes("chat_stream")) + relay.finish())]
    native = [k for k, _ in events(sse_bytes("messages_stream"))]
    assert runs(kinds) == runs(native)


def test_gpt_oss_reasoning_becomes_thinking_and_reasoning_items() -> None:
    answer = gpt_oss()["tool_turn_answer"]
    blocks = MessagesTranslation({"model": "m", "messages": []}, "d").from_chat(answer)
    assert [b["type"] for b in blocks["content"]] == ["thinking", "tool_use"]
    output = ResponsesTranslation({"model": "m", "input": "x"}, "d", store()).from_chat(answer)
    assert [item["type"] for item in output["output"]] == ["reasoning", "function_call"]
