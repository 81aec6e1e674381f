"""Checks of what the model declares it can do: reasoning, structured output, long context."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from corral.verify import haystack
from corral.verify.checks.common import budget
from corral.verify.model import CheckFailed, haystack_tokens
from corral.verify.probe import Probe
from corral.verify.sse import REASONING_FIELDS, StreamTrace
from corral.verify.symptoms import other_reasoning_keys, reasoning_of, require_content

PUZZLE = [{"role": "user", "content": "A bat and a ball cost 1.10 in total. The bat costs 1.00 "
           "more than the ball. How much does the ball cost?"}]  # fmt: skip
CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


async def check_reasoning(probe: Probe) -> str:
    """A reasoning model returns non-null reasoning and non-null content, streamed and not."""
    fields: dict[str, Any] = {"messages": PUZZLE, "max_tokens": budget(probe.target, 256)}
    reply = await probe.chat(**fields)
    require_content(reply.message)  # names the both-null failure
    field, text = reasoning_of(reply.message)
    if field is None or text is None:
        others = other_reasoning_keys(reply.message)
        hint = f"; found {others}: a renamed field?" if others else ""
        raise CheckFailed(f"no reasoning in {' or '.join(REASONING_FIELDS)}{hint}")
    _expected_field(probe.target.capabilities.reasoning_field, field, "response")
    trace = await probe.raw_stream(**fields)
    stream_field = _stream_reasoning(trace)
    _expected_field(probe.target.capabilities.reasoning_field, stream_field, "stream")
    if stream_field != field:
        raise CheckFailed(f"reasoning is in `{field}` but streamed in `{stream_field}`")
    return f"reasoning in `{field}` ({len(text)} chars), content present; stream agrees"


def _expected_field(expected: str | None, found: str, where: str) -> None:
    if expected and found != expected:
        raise CheckFailed(
            f"{where}: reasoning is in `{found}` but clients read `{expected}` "
            "(the field was renamed between vLLM versions)"
        )


def _stream_reasoning(trace: StreamTrace) -> str:
    problems = trace.protocol_problems()
    if problems:
        raise CheckFailed("stream: " + "; ".join(problems[:3]))
    if not trace.reasoning:
        raise CheckFailed("the stream carried no reasoning deltas")
    if not trace.content:
        raise CheckFailed("the stream carried reasoning but no content")
    return next(iter(trace.reasoning))


async def check_structured_output(probe: Probe) -> str:
    """`response_format: json_schema` (strict) gives content that validates against the schema."""
    reply = await probe.chat(
        messages=[{"role": "user", "content": "Name the capital of France and its population."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True},
        },
        max_tokens=budget(probe.target, 100),
    )
    content = require_content(reply.message)
    if reply.finish_reason == "length":
        raise CheckFailed(f"the JSON was cut off by max_tokens: {content[:80]!r}")
    try:
        value = json.loads(content)
    except json.JSONDecodeError:
        raise CheckFailed(f"content is not JSON: {content[:80]!r}") from None
    try:
        jsonschema.validate(value, CITY_SCHEMA)
    except jsonschema.ValidationError as exc:
        raise CheckFailed(f"content breaks the schema: {exc.message}") from None
    return f"valid JSON: {content[:60]}"


async def check_needle(probe: Probe) -> str:
    """A pass key hidden at half depth in a prompt filling one request's context is found.

    The context is the smaller of the declared one and what the engine says one request
    gets (llama-server's per-slot n_ctx, vLLM's max_model_len); the prompt is counted by the
    server's own tokenizer when it has one."""
    target = probe.target
    declared = target.capabilities.context_length
    served = await probe.served_context()
    context = min(declared, served) if served else declared
    hay = await haystack.build(target.model, haystack_tokens(context), probe.tokenize)
    reply = await probe.chat(messages=hay.messages, max_tokens=budget(target, 32))
    content = require_content(reply.message)
    usage = reply.completion.usage
    tokens = usage.prompt_tokens if usage else hay.tokens
    sized = _sizing(hay.measured, probe.count_is_exact, context, served)
    if hay.pass_key not in content:
        raise CheckFailed(
            f"the pass key {hay.pass_key} is not in the answer {content[:80]!r} "
            f"({tokens} prompt tokens, sized {sized})"
        )
    return f"found the pass key in {tokens} prompt tokens (sized {sized})"


def _sizing(measured: bool, exact: bool, context: int, served: int | None) -> str:
    how = "by estimate (no /tokenize)"
    if measured:
        how = "by the server's /tokenize" + ("" if exact else ", chat template estimated")
    where = "the engine's" if served == context else "the declared"
    return f"{how} for {where} {context:,}-token context"
