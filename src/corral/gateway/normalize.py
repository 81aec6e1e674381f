"""Make engine answers look the same whatever the engine version (gpt-oss-aware).

- Reasoning: vLLM renamed `reasoning_content` to `reasoning` (and later removed the old
  name; see docs/engines.md), and clients broke on both sides of the change. Every message
  and stream delta leaves the gateway with both fields, copied from whichever one the
  engine sent.
- Model: the client sees the name it asked for (an alias or role), not the served name.
- Usage: the gateway always asks the engine for the usage chunk of a stream to count
  tokens; `strip_usage` drops it again when the client did not ask for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Tokens:
    """Token counts of one request, from the engine's usage object."""

    prompt: int = 0
    completion: int = 0
    reasoning: int = 0
    seen: bool = False


def mirror_reasoning(message: dict[str, Any]) -> bool:
    """Give a message or delta both reasoning fields if it has either; True if it changed."""
    if "reasoning" in message:
        if "reasoning_content" not in message:
            message["reasoning_content"] = message["reasoning"]
            return True
    elif "reasoning_content" in message:
        message["reasoning"] = message["reasoning_content"]
        return True
    return False


def normalize(obj: dict[str, Any], requested: str) -> bool:
    """Rewrite one response object or stream chunk in place; True if anything changed."""
    changed = False
    if "model" in obj and obj["model"] != requested:
        obj["model"] = requested
        changed = True
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return changed
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        body = choice.get("message") or choice.get("delta")
        if isinstance(body, dict) and mirror_reasoning(body):
            changed = True
    return changed


def is_usage_chunk(obj: dict[str, Any]) -> bool:
    """The final usage-only chunk of a stream (no choices, a usage object)."""
    return not obj.get("choices") and isinstance(obj.get("usage"), dict)


def read_usage(obj: dict[str, Any], tokens: Tokens) -> None:
    """Take the token counts from a response's or chunk's `usage`, if it has one."""
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        return
    tokens.seen = True
    # OpenAI's names, else the Responses/Anthropic ones (passed-through answers)
    tokens.prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    tokens.completion = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    details = usage.get("completion_tokens_details")
    if isinstance(details, dict):
        tokens.reasoning = _int(details.get("reasoning_tokens"))


def has_reasoning_delta(obj: dict[str, Any]) -> bool:
    """Whether a chunk carries reasoning text (counted when usage lacks reasoning tokens)."""
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and (delta.get("reasoning") or delta.get("reasoning_content")):
            return True
    return False


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
