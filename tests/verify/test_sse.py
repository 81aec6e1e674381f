"""The strict SSE parser, on recorded-style streams (no server needed)."""

from __future__ import annotations

import json
from typing import Any

from corral.verify.sse import assemble, parse_sse


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }  # fmt: skip
    return "data: " + json.dumps(body)


def _lines(*events: str) -> list[str]:
    out: list[str] = []
    for event in events:
        out += [event, ""]
    return out


GOOD = _lines(
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Hello"}),
    _chunk({"content": " world"}, "stop"),
    "data: [DONE]",
)


def test_a_good_stream_has_no_problems() -> None:
    trace = assemble(parse_sse(GOOD))
    assert trace.protocol_problems() == []
    assert trace.content == "Hello world"
    assert trace.first_role == "assistant"
    assert trace.finish_reason == "stop"
    assert trace.pieces == 2


def test_missing_done_role_and_double_finish_are_each_reported() -> None:
    lines = _lines(_chunk({"content": "a"}, "stop"), _chunk({"content": "b"}, "stop"))
    problems = " | ".join(assemble(parse_sse(lines)).protocol_problems())
    assert "[DONE]" in problems
    assert "role is None" in problems
    assert "2 chunks carry a finish_reason" in problems


def test_error_event_mid_stream_is_reported_first() -> None:
    error = 'data: {"error": {"message": "HarmonyError: bad header", "code": 500}}'
    lines = _lines(_chunk({"role": "assistant", "content": "x"}), error, "data: [DONE]")
    problems = assemble(parse_sse(lines)).protocol_problems()
    assert problems[0] == "error event mid-stream: HarmonyError: bad header"


def test_non_json_data_after_done_and_stray_lines_are_problems() -> None:
    lines = [": keep-alive", "", "data: {oops", "", "garbage", "", *GOOD, "data: late", ""]
    problems = " | ".join(assemble(parse_sse(lines)).protocol_problems())
    assert "chunk 0 is not JSON" in problems
    assert "not an SSE field" in problems
    assert "data after [DONE]" in problems


def test_a_chunk_the_sdk_type_rejects_is_a_problem() -> None:
    bad = 'data: {"id": "c1", "object": "chat.completion.chunk", "choices": []}'
    problems = assemble(parse_sse(_lines(bad, "data: [DONE]"))).problems
    assert len(problems) == 1
    assert "not a ChatCompletionChunk" in problems[0]


def test_tool_call_deltas_and_reasoning_assemble() -> None:
    lines = _lines(
        _chunk({"role": "assistant", "reasoning_content": "think"}),
        _chunk({"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}, "tool_calls"),
        "data: [DONE]",
    )
    trace = assemble(parse_sse(lines))
    call = trace.tool_calls[0]
    assert (call.id, call.name, call.arguments) == ("t1", "f", '{"a": 1}')
    assert trace.reasoning == {"reasoning_content": "think"}
