"""Detectors for the breakages operators keep hitting with gpt-oss on vLLM (and elsewhere).

- Tool-call JSON leaking into `content` instead of `tool_calls` (a tool parser that did not
  match the model's output, e.g. `--tool-call-parser` missing or wrong for the model).
- `HarmonyError` mid-stream: the stream carries an error event after it started
  (`sse.StreamTrace.errors`).
- `content` and `reasoning` both null (seen on GB10 with the Marlin MXFP4 kernel).
- The reasoning field renamed: older vLLM sends `reasoning_content`, newer `reasoning`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from corral.verify.model import CheckFailed
from corral.verify.sse import REASONING_FIELDS

# Markers of a tool call written out as text: hermes `<tool_call>`, harmony's channel and
# recipient tokens, and the JSON keys a serialized call carries.
_TOOL_TEXT_MARKERS = ("<tool_call>", "<|call|>", "to=functions.", '"arguments"', '"parameters"')
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def leaked_tool_call(content: str | None) -> str | None:
    """How `content` looks like a tool call that should have been in `tool_calls`, or None."""
    if not content:
        return None
    marker = next((m for m in _TOOL_TEXT_MARKERS if m in content), None)
    if marker:
        return f"content carries a tool call as text ({marker!r}): {content[:120]!r}"
    try:
        obj = json.loads(_FENCE.sub("", content.strip()))
    except json.JSONDecodeError:
        return None
    if isinstance(obj, dict) and "name" in obj:
        return f"content is a JSON tool call, not tool_calls: {content[:120]!r}"
    return None


def reasoning_of(message: dict[str, Any]) -> tuple[str | None, str | None]:
    """(field, text) of the first non-empty reasoning field in a message, else (None, None)."""
    for name in REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return name, value
    return None, None


def other_reasoning_keys(message: dict[str, Any]) -> list[str]:
    """Non-empty keys that look like reasoning under a name no client reads (a renamed field)."""
    return [
        key
        for key, value in message.items()
        if "reason" in key.lower() and key not in REASONING_FIELDS and value
    ]


def require_content(message: dict[str, Any]) -> str:
    """The message's text content; CheckFailed naming the known failure when it is null."""
    content = message.get("content")
    if isinstance(content, str) and content.strip():
        return content
    field, _ = reasoning_of(message)
    if content is None and field is None:
        raise CheckFailed(
            "content and reasoning are both null (the known gpt-oss failure on GB10 with the "
            "Marlin MXFP4 kernel; try another MoE kernel or vLLM version)"
        )
    raise CheckFailed(f"no text content (content={content!r})")


def check_arguments(name: str, arguments: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Parse a call's arguments and validate them against the tool's JSON schema."""
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError as exc:
        why = f"{name} arguments are not JSON ({exc.msg}): {arguments[:120]!r}"
        raise CheckFailed(why) from None
    try:
        jsonschema.validate(parsed, schema)
    except jsonschema.ValidationError as exc:
        raise CheckFailed(f"{name} arguments break the tool's schema: {exc.message}") from None
    if not isinstance(parsed, dict):
        raise CheckFailed(f"{name} arguments are not a JSON object: {arguments[:120]!r}")
    return parsed
