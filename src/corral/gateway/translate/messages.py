"""The Anthropic Messages API (`POST /v1/messages`) translated to Chat Completions and back.

Request: `system` (a string or text blocks), `messages` whose content is a string or
blocks (`text`, `image` as base64 or URL, assistant `tool_use` and `thinking`, user
`tool_result`), `tools` (custom tools with an `input_schema`, sent as strict chat tools so
a forced or chosen tool's `input` follows the schema: vLLM 0.32's own /v1/messages does
not enforce it, docs/engines.md), `tool_choice` (auto, any → required, tool → named,
none), `max_tokens`, `stop_sequences`, `temperature`, `top_p`, `top_k`. Server tools
(`web_search_...`, `bash_...`, ...) and `document` blocks are a 400 naming the field.

Answer: content blocks in order (`thinking`, `text`, `tool_use` with `input` parsed from
the call's JSON arguments), `stop_reason` (end_turn, max_tokens, stop_sequence,
tool_use), usage. Streams follow Anthropic's event order: message_start, then per block
content_block_start / content_block_delta* / content_block_stop, then message_delta (stop
reason and usage) and message_stop; a broken engine stream ends with an `error` event.
Errors on this route use Anthropic's shape (`error_body`).
"""

from __future__ import annotations

import json
from typing import Any

from corral.gateway import codec
from corral.gateway.translate import chat

SAMPLING = ("temperature", "top_p", "top_k")
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
KNOWN = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "tools",
        "tool_choice",
        "stop_sequences",
        "stream",
        "metadata",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        *SAMPLING,
    }
)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str, source: str = "corral") -> bytes:
    """An error in Anthropic's shape, {"type": "error", "error": {"type", "message"}}, plus
    `source` (corral or engine) as on every gateway error."""
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    error = {"type": kind, "message": message, "source": source}
    return codec.dumps({"type": "error", "error": error})


class MessagesTranslation:
    """One Messages request on its way to a chat engine and back."""

    def __init__(self, payload: dict[str, Any], requested: str) -> None:
        self.payload = payload
        self.requested = requested
        self.id = chat.new_id("msg_")
        self.chat = self._chat()  # raises the 400s before anything is sent

    def chat_request(self) -> dict[str, Any]:
        return self.chat

    def _chat(self) -> dict[str, Any]:
        p = self.payload
        for name in p:
            if name not in KNOWN:
                raise chat.field_error(
                    name, "this field cannot be translated for a chat-only engine"
                )
        body: dict[str, Any] = {"model": self.requested, "messages": self._messages()}
        if p.get("max_tokens") is not None:
            body["max_tokens"] = p["max_tokens"]
        chat.copy_sampling(p, body, SAMPLING)
        if p.get("stop_sequences"):
            body["stop"] = list(p["stop_sequences"])
        if p.get("tools"):
            body["tools"] = [_chat_tool(i, t) for i, t in enumerate(p["tools"])]
        if p.get("tool_choice") is not None:
            _tool_choice(p["tool_choice"], body)
        if p.get("stream") is True:
            body["stream"] = True
        return body

    def _messages(self) -> list[dict[str, Any]]:
        out = _system(self.payload.get("system"))
        messages = self.payload.get("messages")
        if not isinstance(messages, list):
            raise chat.field_error("messages", "must be a list of messages")
        for i, message in enumerate(messages):
            out.extend(_message(i, message))
        return out

    # -- answer ------------------------------------------------------------------------
    def from_chat(self, answer: dict[str, Any]) -> dict[str, Any]:
        message, finish = chat.message_of(answer)
        prompt, completion, _ = chat.usage_of(answer)
        content = content_blocks(message)
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.requested,
            "content": content,
            "stop_reason": self._stop_reason(finish, content),
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }

    def _stop_reason(self, finish: str, content: list[dict[str, Any]]) -> str:
        if any(block["type"] == "tool_use" for block in content):
            return "tool_use"  # a forced tool ends with "stop" on vLLM: it is still a call
        if finish == "stop" and self.payload.get("stop_sequences"):
            return "end_turn"
        return STOP_REASONS.get(finish, "end_turn")

    def writer(self) -> MessagesWriter:
        return MessagesWriter(self)


# -- request pieces --------------------------------------------------------------------
def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise chat.field_error("system", "must be a string or a list of text blocks")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise chat.field_error(f"system[{i}].type", "only text blocks are supported")
        texts.append(str(block.get("text", "")))
    return [{"role": "system", "content": "\n\n".join(texts)}]


def _message(i: int, message: Any) -> list[dict[str, Any]]:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise chat.field_error(f"messages[{i}].role", "must be `user` or `assistant`")
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise chat.field_error(f"messages[{i}].content", "must be a string or a list of blocks")
    if role == "assistant":
        return [_assistant(i, content)]
    return _user(i, content)


def _assistant(i: int, blocks: list[Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    for j, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            message["content"] += str(block.get("text", ""))
        elif kind == "thinking":
            message["reasoning"] = message.get("reasoning", "") + str(block.get("thinking", ""))
        elif kind == "redacted_thinking":
            continue  # opaque to any engine but Anthropic's own
        elif kind == "tool_use":
            message.setdefault("tool_calls", []).append(_call(block))
        else:
            raise chat.field_error(
                f"messages[{i}].content[{j}].type",
                f"{kind!r} blocks are not supported in assistant turns",
            )
    return message


def _call(block: dict[str, Any]) -> dict[str, Any]:
    arguments = json.dumps(block.get("input") or {})
    name = str(block.get("name"))
    return {
        "id": str(block.get("id")),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _user(i: int, blocks: list[Any]) -> list[dict[str, Any]]:
    """Tool results become `tool` messages (first, as chat wants); the rest one user turn."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"messages[{i}].content[{j}]"
        if kind == "tool_result":
            results.append(_tool_result(where, block))
        elif kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image(where, block.get("source")))
        else:
            raise chat.field_error(f"{where}.type", f"{kind!r} blocks are not supported")
    if not parts:
        return results
    if all(part["type"] == "text" for part in parts):
        return [*results, {"role": "user", "content": "".join(p["text"] for p in parts)}]
    return [*results, {"role": "user", "content": parts}]


def _tool_result(where: str, block: dict[str, Any]) -> dict[str, Any]:
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise chat.field_error(f"{where}.content[{k}].type", "only text is supported here")
            texts.append(str(part.get("text", "")))
        content = "\n".join(texts)
    if block.get("is_error"):
        content = f"Error: {content}"
    return {"role": "tool", "tool_call_id": str(block.get("tool_use_id")), "content": str(content)}


def _image(where: str, source: Any) -> dict[str, Any]:
    if isinstance(source, dict) and source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif isinstance(source, dict) and source.get("type") == "url":
        url = str(source.get("url"))
    else:
        raise chat.field_error(f"{where}.source", "images must be base64 or url sources")
    return {"type": "image_url", "image_url": {"url": url}}


def _chat_tool(i: int, tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
        kind = tool.get("type") if isinstance(tool, dict) else tool
        raise chat.field_error(
            f"tools[{i}].type",
            f"server tools ({kind!r}) cannot run on this "
            "engine; only custom tools with an input_schema",
        )
    if not isinstance(tool.get("input_schema"), dict):
        raise chat.field_error(f"tools[{i}].input_schema", "a tool needs a JSON Schema object")
    return chat.function_tool(
        tool.get("name"), tool["input_schema"], tool.get("description"), strict=True
    )


def _tool_choice(choice: Any, body: dict[str, Any]) -> None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        body["tool_choice"] = "auto"
    elif kind == "any":
        body["tool_choice"] = chat.required_choice(body.get("tools") or [])
    elif kind == "none":
        body["tool_choice"] = "none"
    elif kind == "tool" and choice.get("name"):
        body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise chat.field_error("tool_choice", f"{choice!r} is not supported")
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use"):
        body["parallel_tool_calls"] = False


# -- chat answer → content blocks ------------------------------------------------------
def content_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    thought = chat.reasoning_of(message)
    if thought:
        blocks.append({"type": "thinking", "thinking": thought, "signature": ""})
    if message.get("content"):
        blocks.append({"type": "text", "text": str(message["content"])})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call.get("id")),
                "name": str(function.get("name")),
                "input": tool_input(function.get("arguments")),
            }
        )
    return blocks


def tool_input(arguments: Any) -> Any:
    """A call's JSON arguments as the tool_use `input` (an object; a raw string if not JSON)."""
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        return json.loads(arguments)
    except ValueError:
        return {"_unparsed_arguments": arguments}


# -- streaming -------------------------------------------------------------------------
class MessagesWriter(chat.PieceWriter):
    """Chat chunks in, Anthropic stream events out. One open content block at a time."""

    def __init__(self, translation: MessagesTranslation) -> None:
        self.t = translation
        self.index = -1
        self.open: str | None = None  # "thinking" | "text" | "tool_use"
        self.saw_tool = False

    def finish(self) -> bytes:
        out = self._begin()
        out.extend(self._close())
        reason = "tool_use" if self.saw_tool else STOP_REASONS.get(self.finish_reason, "end_turn")
        prompt, completion, _ = self.usage or (0, 0, 0)
        out.append(
            _event(
                "message_delta",
                {
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": {"input_tokens": prompt, "output_tokens": completion},
                },
            )
        )
        out.append(_event("message_stop", {}))
        return b"".join(out)

    def fail(self, status: int, message: str, code: str) -> bytes:
        out = self._begin()
        kind = "overloaded_error" if status in (503, 529) else "api_error"
        out.append(_event("error", {"error": {"type": kind, "message": f"{message} ({code})"}}))
        return b"".join(out)

    def _start(self) -> list[bytes]:
        message: dict[str, Any] = {
            "id": self.t.id,
            "type": "message",
            "role": "assistant",
            "model": self.t.requested,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [_event("message_start", {"message": message})]

    def _piece(self, piece: chat.Piece) -> list[bytes]:
        if piece.kind == "reasoning":
            return [
                *self._ensure("thinking", {"type": "thinking", "thinking": "", "signature": ""}),
                self._delta({"type": "thinking_delta", "thinking": piece.text}),
            ]
        if piece.kind == "text":
            return [
                *self._ensure("text", {"type": "text", "text": ""}),
                self._delta({"type": "text_delta", "text": piece.text}),
            ]
        if piece.kind == "tool_start":
            self.saw_tool = True
            out = self._close()
            block = {"type": "tool_use", "id": piece.call_id, "name": piece.name, "input": {}}
            return [*out, *self._open("tool_use", block)]
        if self.open != "tool_use":
            return []
        return [self._delta({"type": "input_json_delta", "partial_json": piece.text})]

    def _ensure(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        if self.open == kind:
            return []
        return [*self._close(), *self._open(kind, block)]

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        self.index += 1
        self.open = kind
        return [_event("content_block_start", {"index": self.index, "content_block": block})]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"index": self.index, "delta": delta})

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [_event("content_block_stop", {"index": self.index})]


def _event(kind: str, body: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + codec.dumps({"type": kind, **body}) + b"\n\n"


def error_from_openai(status: int, body: bytes) -> bytes:
    """An OpenAI-shaped error body (the gateway's or an engine's) in Anthropic's shape.

    A body that already is in Anthropic's shape (vLLM's own /v1/messages) is kept."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return error_body(status, body.decode("utf-8", "replace")[:2000], "engine")
    if isinstance(parsed, dict) and parsed.get("type") == "error":
        return body
    inner = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(inner, dict):
        return error_body(status, f"HTTP {status}", "engine")
    message = str(inner.get("message") or f"HTTP {status}")
    return error_body(status, message, str(inner.get("source") or "engine"))
