"""Prompts, tools and helpers the checks share."""

from __future__ import annotations

from typing import Any

from openai.types.chat import ChatCompletionMessageToolCall

from corral.verify.model import CheckFailed, Target
from corral.verify.probe import Reply
from corral.verify.symptoms import check_arguments, leaked_tool_call

# Reasoning models spend tokens thinking before they answer; give them room for it.
REASONING_BUDGET = 1024
# SmolLM2-135M needs ~70 tokens to finish a named tool call; 200 leaves headroom.
TOOL_TOKENS = 200

HELLO = [{"role": "user", "content": "Say hello in five words."}]
STORY = [{"role": "user", "content": "Write a long story about a cat who goes to sea."}]
WEATHER = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "strict": True,  # engines only hold arguments to the schema for strict tools
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "city name, e.g. Paris", "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current local time in a city.",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
NAMED_WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def budget(target: Target, tokens: int) -> int:
    """max_tokens for an answer of `tokens`, plus thinking room for reasoning models."""
    return tokens + (REASONING_BUDGET if target.capabilities.reasoning else 0)


def schema_of(tools: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for tool in tools:
        if tool["function"]["name"] == name:
            schema: dict[str, Any] = tool["function"]["parameters"]
            return schema
    offered = ", ".join(t["function"]["name"] for t in tools)
    raise CheckFailed(f"called a tool that was not offered: {name!r} (offered: {offered})")


def tool_calls_of(reply: Reply) -> list[ChatCompletionMessageToolCall]:
    """The reply's tool calls; CheckFailed saying where the call went if there are none."""
    message = reply.completion.choices[0].message
    calls = [c for c in message.tool_calls or [] if isinstance(c, ChatCompletionMessageToolCall)]
    leak = leaked_tool_call(message.content)
    if leak:
        raise CheckFailed(leak)
    if not calls:
        raise CheckFailed(
            f"no tool_calls in the answer (finish_reason {reply.finish_reason!r}, "
            f"content {(message.content or '')[:80]!r})"
        )
    if reply.finish_reason == "length":
        raise CheckFailed("the tool call was cut off by max_tokens (finish_reason 'length')")
    return calls


def validate_calls(
    calls: list[ChatCompletionMessageToolCall], tools: list[dict[str, Any]]
) -> list[str]:
    """Check every call's id, name and arguments; returns 'name(args)' summaries."""
    summaries = []
    for call in calls:
        if not call.id:
            raise CheckFailed(f"tool call {call.function.name!r} has no id")
        schema = schema_of(tools, call.function.name)
        args = check_arguments(call.function.name, call.function.arguments, schema)
        summaries.append(f"{call.function.name}({_short(args)})")
    return summaries


def _short(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())[:80]
