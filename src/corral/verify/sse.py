"""Parse a chat-completions event stream byte-for-byte, independently of the openai SDK.

The SDK is lenient: it skips lines it does not understand, does not insist on `[DONE]`, and
accepts a second finish_reason. This parser is strict, so a malformed stream can't hide
behind that leniency. `parse_sse` turns lines into `data:` payloads plus the protocol
problems it saw (Server-Sent Events, https://html.spec.whatwg.org/multipage/server-sent-events.html);
`assemble` turns the payloads into a `StreamTrace`: content, reasoning, tool calls, usage,
finish reasons, and every chunk validated against the SDK's `ChatCompletionChunk` type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletionChunk
from pydantic import ValidationError

DONE = "[DONE]"
REASONING_FIELDS = ("reasoning", "reasoning_content")
_IGNORED_FIELDS = ("event", "id", "retry")


@dataclass
class SseParse:
    payloads: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    done: bool = False


def parse_sse(lines: Iterable[str]) -> SseParse:
    """Split an event stream into `data:` payloads; `[DONE]` ends it (data after it is wrong)."""
    out = SseParse()
    data: list[str] = []
    for line in [*lines, ""]:
        if line == "":
            if data:
                _close_event(out, "\n".join(data))
                data = []
            continue
        if line.startswith(":"):
            continue  # an SSE comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name not in _IGNORED_FIELDS:
            out.problems.append(f"line is not an SSE field: {line[:80]!r}")
    return out


def _close_event(out: SseParse, payload: str) -> None:
    if out.done:
        out.problems.append(f"data after [DONE]: {payload[:80]!r}")
    elif payload.strip() == DONE:
        out.done = True
    else:
        out.payloads.append(payload)


@dataclass
class ToolCallParts:
    id: str | None = None
    name: str = ""
    arguments: str = ""


@dataclass
class StreamTrace:
    """What one stream said, assembled without the SDK."""

    chunks: list[ChatCompletionChunk] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    done: bool = False
    saw_choice: bool = False
    first_role: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    content: str = ""
    pieces: int = 0  # chunks that carried generated text (content or reasoning)
    reasoning: dict[str, str] = field(default_factory=dict)
    tool_calls: dict[int, ToolCallParts] = field(default_factory=dict)
    usage: dict[str, Any] | None = None

    @property
    def finish_reason(self) -> str | None:
        return self.finish_reasons[-1] if self.finish_reasons else None

    def reasoning_text(self) -> str:
        return "".join(self.reasoning.values())

    def protocol_problems(self) -> list[str]:
        """Everything wrong with the stream as a stream, first problems first."""
        found = [f"error event mid-stream: {e}" for e in self.errors]
        found += self.problems
        if not self.chunks:
            found.append("the stream carried no chunks")
            return found
        if not self.done:
            found.append("the stream ended without `data: [DONE]`")
        if self.first_role != "assistant":
            found.append(f"the first chunk's role is {self.first_role!r}, not 'assistant'")
        if len(self.finish_reasons) != 1:
            count = len(self.finish_reasons)
            found.append(f"{count} chunks carry a finish_reason, not exactly one")
        return found


def assemble(parsed: SseParse) -> StreamTrace:
    """Decode each payload, validate it as a ChatCompletionChunk and accumulate the deltas."""
    trace = StreamTrace(problems=list(parsed.problems), done=parsed.done)
    for number, payload in enumerate(parsed.payloads):
        try:
            obj = json.loads(payload)
        except json.JSONDecodeError:
            trace.problems.append(f"chunk {number} is not JSON: {payload[:80]!r}")
            continue
        _take_chunk(trace, number, obj)
    return trace


def _take_chunk(trace: StreamTrace, number: int, obj: Any) -> None:
    if isinstance(obj, dict) and "error" in obj:
        # vLLM reports failures mid-stream (e.g. gpt-oss's HarmonyError) as an error event.
        trace.errors.append(_error_text(obj["error"]))
        return
    try:
        chunk = ChatCompletionChunk.model_validate(obj)
    except ValidationError as exc:
        trace.problems.append(f"chunk {number} is not a ChatCompletionChunk: {_first_error(exc)}")
        return
    trace.chunks.append(chunk)
    if chunk.usage is not None:
        trace.usage = chunk.usage.model_dump()
    for choice in obj.get("choices") or []:
        _take_choice(trace, choice)


def _take_choice(trace: StreamTrace, choice: dict[str, Any]) -> None:
    delta = choice.get("delta") or {}
    if not trace.saw_choice:
        trace.saw_choice = True
        trace.first_role = delta.get("role")
    if delta.get("content"):
        trace.content += delta["content"]
    for name in REASONING_FIELDS:
        if delta.get(name):
            trace.reasoning[name] = trace.reasoning.get(name, "") + delta[name]
    if delta.get("content") or any(delta.get(name) for name in REASONING_FIELDS):
        trace.pieces += 1
    for call in delta.get("tool_calls") or []:
        _take_tool_delta(trace, call)
    if choice.get("finish_reason") is not None:
        trace.finish_reasons.append(choice["finish_reason"])


def _take_tool_delta(trace: StreamTrace, call: dict[str, Any]) -> None:
    parts = trace.tool_calls.setdefault(int(call.get("index", 0)), ToolCallParts())
    parts.id = parts.id or call.get("id")
    function = call.get("function") or {}
    parts.name += function.get("name") or ""
    parts.arguments += function.get("arguments") or ""


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"
