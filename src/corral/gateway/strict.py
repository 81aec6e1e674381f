"""Make answers validate against OpenAI's published schema (data/openai_schemas.json).

vLLM 0.32 sends `null` for fields where the schema allows none (a chat message's
`annotations` and `function_call`, usage's `completion_tokens_details` and
`prompt_tokens_details`; measured on the real engine, tests/fixtures/gateway/vllm-0.32),
and other engines leave out fields the schema requires (`refusal` on a message,
`logprobs` on a choice). Strict clients (typed SDKs, schema validators) reject both. The
gateway drops those nulls and adds the required fields as `null`, which the schema allows.

Only answers the gateway decodes anyway pass through here (whole answers and the chunks
that carry usage); the chunks on the streaming fast path already validate as the engines
send them (tests/gateway/test_strict.py checks real captures).
"""

from __future__ import annotations

from typing import Any

# Keys whose value may be an object/array but never null in the schema.
MESSAGE_NO_NULL = ("annotations", "function_call", "tool_calls", "audio")
USAGE_NO_NULL = ("completion_tokens_details", "prompt_tokens_details")


def conform(obj: dict[str, Any]) -> bool:
    """Fix one chat completion, completion or chunk in place; True if anything changed."""
    changed = _conform_usage(obj.get("usage"))
    choices = obj.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict):
                changed = _conform_choice(choice) or changed
    return changed


def _conform_choice(choice: dict[str, Any]) -> bool:
    changed = False
    if "logprobs" not in choice and "delta" not in choice:
        choice["logprobs"] = None  # required (nullable) on whole answers
        changed = True
    message = choice.get("message")
    if isinstance(message, dict):
        changed = _drop_nulls(message, MESSAGE_NO_NULL) or changed
        if "refusal" not in message:
            message["refusal"] = None
            changed = True
    delta = choice.get("delta")
    if isinstance(delta, dict):
        changed = _drop_nulls(delta, ("function_call", "tool_calls")) or changed
    return changed


def _conform_usage(usage: Any) -> bool:
    return isinstance(usage, dict) and _drop_nulls(usage, USAGE_NO_NULL)


def _drop_nulls(obj: dict[str, Any], keys: tuple[str, ...]) -> bool:
    dropped = [key for key in keys if key in obj and obj[key] is None]
    for key in dropped:
        del obj[key]
    return bool(dropped)
