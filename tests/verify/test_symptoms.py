"""Detectors of the known gpt-oss breakages, on literal examples."""

from __future__ import annotations

import pytest

from corral.verify.model import CheckFailed
from corral.verify.symptoms import (
    check_arguments,
    leaked_tool_call,
    other_reasoning_keys,
    reasoning_of,
    require_content,
)

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '```json\n{"name": "get_weather"}\n```',
        '<tool_call>{"name": "get_weather"}</tool_call>',
        "<|channel|>commentary to=functions.get_weather <|message|>{}<|call|>",
    ],
)
def test_tool_calls_written_as_text_are_found(content: str) -> None:
    assert leaked_tool_call(content) is not None


@pytest.mark.parametrize("content", [None, "", "It is sunny in Paris.", '{"city": "Paris"}'])
def test_plain_answers_are_not_leaks(content: str | None) -> None:
    assert leaked_tool_call(content) is None


def test_both_null_names_the_known_failure() -> None:
    with pytest.raises(CheckFailed, match="both null"):
        require_content({"role": "assistant", "content": None, "reasoning": None})


def test_reasoning_is_read_from_either_name_and_other_names_are_flagged() -> None:
    assert reasoning_of({"reasoning_content": "hm"}) == ("reasoning_content", "hm")
    assert reasoning_of({"reasoning": "hm", "reasoning_content": None}) == ("reasoning", "hm")
    assert reasoning_of({"reasoning": None}) == (None, None)
    assert other_reasoning_keys({"reasoning_text": "hm", "reasoning": None}) == ["reasoning_text"]


def test_arguments_must_parse_and_match_the_schema() -> None:
    assert check_arguments("f", '{"city": "Paris"}', SCHEMA) == {"city": "Paris"}
    with pytest.raises(CheckFailed, match="not JSON"):
        check_arguments("f", '{"city": "Paris"', SCHEMA)
    with pytest.raises(CheckFailed, match="schema"):
        check_arguments("f", '{"town": "Paris"}', SCHEMA)
