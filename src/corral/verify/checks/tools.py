"""Tool-calling checks: named, required, auto, a full round trip, and streamed calls.

Each one also looks for a tool call written into `content` (the gpt-oss / wrong-parser
failure) and validates arguments against the tool's schema with jsonschema.
"""

from __future__ import annotations

import json
from typing import Any

import openai
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageToolCall

from corral.verify.checks.common import (
    NAMED_WEATHER,
    TIME_TOOL,
    TOOL_TOKENS,
    WEATHER,
    WEATHER_TOOL,
    budget,
    schema_of,
    tool_calls_of,
    validate_calls,
)
from corral.verify.model import CheckFailed
from corral.verify.probe import Probe, Reply
from corral.verify.sse import StreamTrace, ToolCallParts
from corral.verify.symptoms import check_arguments, leaked_tool_call, require_content

TOOL_RESULT = {"city": "Paris", "temperature": 17, "unit": "celsius", "conditions": "sunny"}


async def _calls(probe: Probe, reply: Reply) -> list[ChatCompletionMessageToolCall]:
    """The reply's tool calls; when the model answered in text, the failure says why it
    may not call tools at all, from what the deployment declares and the engine it is."""
    try:
        return tool_calls_of(reply)
    except CheckFailed as exc:
        if reply.completion.choices[0].message.tool_calls or not reply.message.get("content"):
            raise
        raise CheckFailed(f"{exc}; {await why_no_call(probe)}") from None


async def why_no_call(probe: Probe) -> str:
    caps = probe.target.capabilities
    auto = str(caps.auto_tool_choice).lower()
    declared = f"the deployment declares tools: true, auto_tool_choice: {auto}"
    if await probe.engine_kind() == "llama-server":
        return (
            f"{declared}, but llama-server answers in text for every tool_choice (named, "
            "required, auto) when the model's chat template has no tool format, as "
            "SmolLM2's has none: declare capabilities.tools: false for this deployment"
        )
    return (
        f"{declared}; a model whose chat template does not show tools answers in text: "
        "declare capabilities.tools: false, or serve it with a tool-call parser (vLLM: "
        "--enable-auto-tool-choice --tool-call-parser NAME)"
    )


def _first_choice(probe: Probe) -> Any:
    """`auto` when the model can pick tools itself, else name the tool."""
    return "auto" if probe.target.capabilities.auto_tool_choice else NAMED_WEATHER


async def check_tool_named(probe: Probe) -> str:
    """`tool_choice` naming a strict tool gives that call, arguments valid against its schema."""
    tools = [WEATHER_TOOL]
    reply = await probe.chat(
        messages=WEATHER, tools=tools, tool_choice=NAMED_WEATHER,
        max_tokens=budget(probe.target, TOOL_TOKENS),
    )  # fmt: skip
    calls = await _calls(probe, reply)
    if calls[0].function.name != "get_weather":
        raise CheckFailed(f"named get_weather but the call is {calls[0].function.name!r}")
    return ", ".join(validate_calls(calls, tools))


async def check_tool_required(probe: Probe) -> str:
    """`tool_choice: "required"` gives at least one valid call to an offered tool."""
    tools = [WEATHER_TOOL, TIME_TOOL]
    reply = await probe.chat(
        messages=WEATHER, tools=tools, tool_choice="required",
        max_tokens=budget(probe.target, TOOL_TOKENS),
    )  # fmt: skip
    return ", ".join(validate_calls(await _calls(probe, reply), tools))


async def check_tool_auto(probe: Probe) -> str:
    """With `tool_choice: "auto"` and a question only the tool can answer, the model calls it."""
    tools = [WEATHER_TOOL, TIME_TOOL]
    prompt = [{"role": "user", "content": "Use the get_weather tool: how warm is it in Paris?"}]
    reply = await probe.chat(
        messages=prompt, tools=tools, tool_choice="auto",
        max_tokens=budget(probe.target, TOOL_TOKENS),
    )  # fmt: skip
    calls = await _calls(probe, reply)
    if "get_weather" not in {c.function.name for c in calls}:
        raise CheckFailed(f"called {[c.function.name for c in calls]}, not get_weather")
    return ", ".join(validate_calls(calls, tools))


async def check_tool_round_trip(probe: Probe) -> str:
    """assistant tool_calls → tool result → a final text answer (no further call, no leak)."""
    tools = [WEATHER_TOOL]
    first = await probe.chat(
        messages=WEATHER, tools=tools, tool_choice=_first_choice(probe),
        max_tokens=budget(probe.target, TOOL_TOKENS),
    )  # fmt: skip
    call = (await _calls(probe, first))[0]
    validate_calls([call], tools)
    history = [*WEATHER, _assistant_turn(call.id, call.function.name, call.function.arguments)]
    history.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(TOOL_RESULT)})
    second = await probe.chat(
        messages=history, tools=tools,
        tool_choice="auto" if probe.target.capabilities.auto_tool_choice else "none",
        max_tokens=budget(probe.target, 64),
    )  # fmt: skip
    if second.completion.choices[0].message.tool_calls:
        raise CheckFailed("the model called a tool again instead of answering from the result")
    content = require_content(second.message)
    leak = leaked_tool_call(content)
    if leak:
        raise CheckFailed(f"final answer: {leak}")
    uses = "uses" if str(TOOL_RESULT["temperature"]) in content else "does not quote"
    return f"answered in {len(content)} chars; the answer {uses} the tool result"


def _assistant_turn(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    # content None, as the API returns it: chat templates that can't render a null content
    # break here, which is exactly what a round trip should find.
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        ],
    }


async def check_tool_stream(probe: Probe) -> str:
    """Streamed tool-call deltas assemble (by us and by the SDK) into valid calls."""
    tools = [WEATHER_TOOL]
    trace = await probe.raw_stream(
        messages=WEATHER, tools=tools, tool_choice=_first_choice(probe),
        max_tokens=budget(probe.target, TOOL_TOKENS),
    )  # fmt: skip
    problems = trace.protocol_problems()
    if problems:
        raise CheckFailed("; ".join(problems[:3]))
    try:
        calls = _streamed_calls(trace)
    except CheckFailed as exc:
        raise CheckFailed(f"{exc}; {await why_no_call(probe)}") from None
    summaries = [_valid_streamed(parts, tools) for parts in calls]
    _sdk_agrees(trace.chunks, tools, calls)
    return f"{len(trace.chunks)} chunks → " + ", ".join(summaries)


def _streamed_calls(trace: StreamTrace) -> list[ToolCallParts]:
    leak = leaked_tool_call(trace.content)
    if leak:
        raise CheckFailed(f"stream: {leak}")
    if not trace.tool_calls:
        raise CheckFailed(f"no tool-call deltas in the stream (content {trace.content[:80]!r})")
    if trace.finish_reason == "length":
        raise CheckFailed("the streamed tool call was cut off by max_tokens")
    return [trace.tool_calls[i] for i in sorted(trace.tool_calls)]


def _valid_streamed(parts: ToolCallParts, tools: list[dict[str, Any]]) -> str:
    if not parts.id:
        raise CheckFailed(f"streamed tool call {parts.name!r} has no id")
    args = check_arguments(parts.name, parts.arguments, schema_of(tools, parts.name))
    return f"{parts.name}({', '.join(f'{k}={v!r}' for k, v in args.items())[:80]})"


def _sdk_agrees(
    chunks: list[ChatCompletionChunk], tools: list[dict[str, Any]], ours: list[ToolCallParts]
) -> None:
    """The SDK's own stream accumulator must build the same calls from the same chunks."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(input_tools=tools)  # type: ignore[arg-type]
    try:
        for chunk in chunks:
            state.handle_chunk(chunk)
        final = state.get_final_completion()
    except (openai.OpenAIError, ValueError) as exc:
        raise CheckFailed(f"the SDK cannot assemble the streamed calls: {exc}") from None
    sdk_calls = final.choices[0].message.tool_calls or []
    theirs = [(c.function.name, c.function.arguments) for c in sdk_calls]
    if theirs != [(p.name, p.arguments) for p in ours]:
        raise CheckFailed(f"the SDK assembled different calls: {theirs}")
