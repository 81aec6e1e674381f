"""What the Responses and Messages translations share: a chat stream, split into pieces.

A Chat Completions stream interleaves reasoning deltas, text deltas and tool-call deltas
(the first delta of a call carries its `id` and `name`, later ones pieces of `arguments`);
the last chunks carry `finish_reason` and `usage`. `split_chunk` turns one chunk into
`Piece`s in order, so each API's writer only decides how to open, fill and close its own
blocks. Only choice 0 is read: neither API has `n`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from corral.gateway.errors import HttpError

PieceKind = Literal["reasoning", "text", "tool_start", "tool_args", "finish"]


@dataclass(frozen=True)
class Piece:
    kind: PieceKind
    text: str = ""
    index: int = 0  # tool call index
    call_id: str = ""
    name: str = ""


def split_chunk(chunk: dict[str, Any]) -> Iterator[Piece]:
    """The pieces of one chat stream chunk, in the order a client should see them."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return
    choice = choices[0]
    delta = choice.get("delta")
    if isinstance(delta, dict):
        yield from _delta_pieces(delta)
    if choice.get("finish_reason"):
        yield Piece("finish", str(choice["finish_reason"]))


def _delta_pieces(delta: dict[str, Any]) -> Iterator[Piece]:
    thought = delta.get("reasoning") or delta.get("reasoning_content")
    if isinstance(thought, str) and thought:
        yield Piece("reasoning", thought)
    text = delta.get("content")
    if isinstance(text, str) and text:
        yield Piece("text", text)
    for call in delta.get("tool_calls") or ():
        yield from _call_pieces(call)


def _call_pieces(call: dict[str, Any]) -> Iterator[Piece]:
    index = int(call.get("index") or 0)
    function = call.get("function") or {}
    if call.get("id") or function.get("name"):
        call_id = str(call.get("id") or new_id("call_"))
        yield Piece("tool_start", index=index, call_id=call_id, name=str(function.get("name")))
    arguments = function.get("arguments")
    if isinstance(arguments, str) and arguments:
        yield Piece("tool_args", arguments, index=index)


def message_of(answer: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The first choice's message and finish reason of a whole chat answer."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices:
        raise HttpError(502, "the engine answered without choices", code="engine_bad_answer")
    choice = choices[0]
    return choice.get("message") or {}, str(choice.get("finish_reason") or "stop")


def reasoning_of(message: dict[str, Any]) -> str:
    text = message.get("reasoning") or message.get("reasoning_content")
    return text if isinstance(text, str) else ""


def usage_of(answer: dict[str, Any]) -> tuple[int, int, int]:
    """(prompt, completion, reasoning) tokens of a chat answer or usage chunk."""
    usage = answer.get("usage") or {}
    details = usage.get("completion_tokens_details") or {}
    return (
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        int(details.get("reasoning_tokens") or 0),
    )


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def copy_sampling(payload: dict[str, Any], chat: dict[str, Any], names: tuple[str, ...]) -> None:
    """Carry the sampling fields both APIs share with chat, unchanged, when present."""
    for name in names:
        if payload.get(name) is not None:
            chat[name] = payload[name]


def required_choice(tools: list[dict[str, Any]]) -> Any:
    """Anthropic `any` / Responses `required` as chat's tool_choice.

    With one tool it is that tool by name: vLLM 0.32 constrains a named tool's arguments
    to its schema but not `required` (measured: the default model answered `required`
    with unconstrained `<tool_call>` text until the token cap).
    """
    if len(tools) == 1:
        return {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
    return "required"


def function_tool(
    name: Any, parameters: dict[str, Any], description: Any, *, strict: bool
) -> dict[str, Any]:
    """A chat `function` tool (both APIs send their tools as these)."""
    function = {"name": name, "parameters": parameters, "strict": strict}
    if description:
        function["description"] = description
    return {"type": "function", "function": function}


def field_error(param: str, message: str) -> HttpError:
    """400 for a body the translator cannot map, naming the field (never a 500)."""
    return HttpError(400, f"`{param}`: {message}", param=param, code="unsupported_field")


class ChatAccumulator:
    """A chat stream folded back into one message (content, reasoning, tool calls)."""

    def __init__(self) -> None:
        self.content = ""
        self.reasoning = ""
        self.calls: dict[int, dict[str, Any]] = {}

    def feed(self, chunk: dict[str, Any]) -> None:
        for piece in split_chunk(chunk):
            if piece.kind == "text":
                self.content += piece.text
            elif piece.kind == "reasoning":
                self.reasoning += piece.text
            elif piece.kind == "tool_start":
                self.calls[piece.index] = {
                    "id": piece.call_id,
                    "type": "function",
                    "function": {"name": piece.name, "arguments": ""},
                }
            elif piece.kind == "tool_args" and piece.index in self.calls:
                self.calls[piece.index]["function"]["arguments"] += piece.text

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning:
            message["reasoning"] = self.reasoning
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        return message


class PieceWriter:
    """What both API stream writers share: start once, keep usage, hand pieces on."""

    started = False
    finish_reason = "stop"
    usage: tuple[int, int, int] | None = None

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        out = self._begin()
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_of(chunk)
        for piece in split_chunk(chunk):
            if piece.kind == "finish":
                self.finish_reason = piece.text
            else:
                out.extend(self._piece(piece))
        return b"".join(out)

    def _begin(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        return self._start()

    def _start(self) -> list[bytes]:
        raise NotImplementedError

    def _piece(self, piece: Piece) -> list[bytes]:
        raise NotImplementedError
