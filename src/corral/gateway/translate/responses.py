"""The Responses API (`POST /v1/responses`) translated to Chat Completions and back.

Request: `input` (a string or a list of items: messages with text or image parts,
`function_call`, `function_call_output`, `reasoning`), `instructions`,
`previous_response_id` (the conversation the gateway retained for that id: see
`store.py`), function `tools` (sent as strict chat tools: the Responses API's tools are
strict by default), `tool_choice`, `max_output_tokens`, `reasoning.effort`, `text.format`.
Anything else that changes the answer and cannot be mapped (built-in tools such as
`web_search`, `input_file` parts, `background`) is a 400 naming the field.

Answer: output items in the order the model produced them (a `reasoning` item, a
`message` with one `output_text` part, `function_call` items), `status` `incomplete` with
`incomplete_details.reason = max_output_tokens` when the token cap ended it, usage.
Streams send the events vLLM's own Responses implementation sends, in the same order
(response.created, response.in_progress, per item output_item.added ... output_item.done,
response.completed; vLLM 0.32 capture in tests/fixtures/gateway/vllm-0.32); a broken
engine stream ends with an `error` event, as OpenAI's API does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from corral.gateway import codec
from corral.gateway.translate.chat import (
    Piece,
    PieceWriter,
    copy_sampling,
    field_error,
    function_tool,
    message_of,
    new_id,
    reasoning_of,
    required_choice,
    usage_of,
)
from corral.gateway.translate.store import Conversation, ResponseStore

SAMPLING = ("temperature", "top_p", "parallel_tool_calls", "user", "seed", "top_logprobs")
IGNORED = frozenset(
    {
        "store",
        "metadata",
        "include",
        "truncation",
        "service_tier",
        "stream",
        "model",
        "prompt_cache_key",
        "safety_identifier",
    }
)
MAPPED = frozenset(
    {
        "input",
        "instructions",
        "previous_response_id",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "reasoning",
        "text",
        "background",
        *SAMPLING,
    }
)


class ResponsesTranslation:
    """One Responses request on its way to a chat engine and back."""

    def __init__(
        self,
        payload: dict[str, Any],
        requested: str,
        store: ResponseStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.payload = payload
        self.requested = requested
        self.store = store
        self.clock = clock
        self.id = new_id("resp_")
        self.created = int(clock())
        self.messages = self._messages()  # raises the 400s before anything is sent
        self.chat = self._chat()

    # -- request -----------------------------------------------------------------------
    def chat_request(self) -> dict[str, Any]:
        return self.chat

    def _chat(self) -> dict[str, Any]:
        p = self.payload
        chat: dict[str, Any] = {"model": self.requested, "messages": self.messages}
        copy_sampling(p, chat, SAMPLING)
        if p.get("max_output_tokens") is not None:
            chat["max_tokens"] = p["max_output_tokens"]
        if p.get("tools"):
            chat["tools"] = [_chat_tool(i, t) for i, t in enumerate(p["tools"])]
        if p.get("tool_choice") is not None:
            chat["tool_choice"] = _chat_tool_choice(p["tool_choice"], chat.get("tools") or [])
        _reasoning(p.get("reasoning"), chat)
        _text_format(p.get("text"), chat)
        if p.get("stream") is True:
            chat["stream"] = True
        return chat

    def _messages(self) -> list[dict[str, Any]]:
        _check_fields(self.payload)
        history = self._history()
        instructions = self.payload.get("instructions")
        system = [{"role": "system", "content": instructions}] if instructions else []
        if isinstance(instructions, list | dict):
            raise field_error("instructions", "must be a string")
        return [*system, *history, *input_messages(self.payload.get("input"))]

    def _history(self) -> list[dict[str, Any]]:
        previous = self.payload.get("previous_response_id")
        if previous is None:
            return []
        found = self.store.get(str(previous))
        if found is None:
            raise field_error(
                "previous_response_id",
                f"no response `{previous}` is retained by this gateway (unknown, or older "
                f"than its retention of {self.store.describe()})",
            )
        return [m for m in found.messages if m.get("role") != "system"]

    # -- answer ------------------------------------------------------------------------
    def from_chat(self, answer: dict[str, Any]) -> dict[str, Any]:
        message, finish = message_of(answer)
        output = output_items(message)
        self._retain(message)
        return self._response(output, finish, usage_of(answer), status=_status(finish))

    def _response(
        self,
        output: list[dict[str, Any]],
        finish: str,
        usage: tuple[int, int, int] | None,
        *,
        status: str,
    ) -> dict[str, Any]:
        p = self.payload
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.requested,
            "output": output,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if finish == "length" else None,
            "instructions": p.get("instructions"),
            "metadata": p.get("metadata") or {},
            "parallel_tool_calls": p.get("parallel_tool_calls", True),
            "tool_choice": p.get("tool_choice", "auto"),
            "tools": p.get("tools") or [],
            "temperature": p.get("temperature"),
            "top_p": p.get("top_p"),
            "max_output_tokens": p.get("max_output_tokens"),
            "previous_response_id": p.get("previous_response_id"),
            "text": p.get("text") or {"format": {"type": "text"}},
            "usage": _usage(usage) if usage is not None else None,
        }

    def _retain(self, message: dict[str, Any]) -> None:
        answer = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            answer["tool_calls"] = message["tool_calls"]
        thought = reasoning_of(message)
        if thought:
            answer["reasoning"] = thought
        self.store.put(self.id, Conversation([*self.messages, answer]))

    def writer(self) -> ResponsesWriter:
        return ResponsesWriter(self)


# -- input → chat messages ------------------------------------------------------------
def input_messages(items: Any) -> list[dict[str, Any]]:
    """Responses `input` as chat messages (a string is one user message)."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise field_error("input", "must be a string or a list of input items")
    messages: list[dict[str, Any]] = []
    pending_reasoning = ""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise field_error(f"input[{i}]", "must be an object")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "reasoning":
            pending_reasoning += _reasoning_text(item)
        elif kind == "message":
            messages.append(_message(i, item))
        elif kind == "function_call":
            _add_call(messages, item, pending_reasoning)
            pending_reasoning = ""
        elif kind == "function_call_output":
            messages.append(_call_output(i, item))
        else:
            raise field_error(f"input[{i}].type", f"input items of type {kind!r} are not supported")
    return messages


def _message(i: int, item: dict[str, Any]) -> dict[str, Any]:
    role = item.get("role")
    if role == "developer":
        role = "system"
    if role not in ("user", "assistant", "system"):
        raise field_error(f"input[{i}].role", f"role {role!r} is not supported")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise field_error(f"input[{i}].content", "must be a string or a list of parts")
    parts = [_part(f"input[{i}].content[{j}]", part) for j, part in enumerate(content)]
    if all(part["type"] == "text" for part in parts):
        return {"role": role, "content": "".join(part["text"] for part in parts)}
    return {"role": role, "content": parts}


def _part(where: str, part: Any) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal", ""))}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return {"type": "image_url", "image_url": {"url": part["image_url"]}}
    raise field_error(f"{where}.type", f"content parts of type {kind!r} are not supported")


def _add_call(messages: list[dict[str, Any]], item: dict[str, Any], reasoning: str) -> None:
    """A function_call item joins the assistant message before it, or starts one."""
    call = {
        "id": str(item.get("call_id") or item.get("id") or new_id("call_")),
        "type": "function",
        "function": {"name": str(item.get("name")), "arguments": str(item.get("arguments", ""))},
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and not reasoning:
        last.setdefault("tool_calls", []).append(call)
        return
    message: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": [call]}
    if reasoning:
        message["reasoning"] = reasoning
    messages.append(message)


def _call_output(i: int, item: dict[str, Any]) -> dict[str, Any]:
    output = item.get("output")
    if isinstance(output, list):
        output = "".join(_part(f"input[{i}].output", p)["text"] for p in output)
    if not isinstance(output, str):
        raise field_error(f"input[{i}].output", "must be a string or a list of text parts")
    return {"role": "tool", "tool_call_id": str(item.get("call_id")), "content": output}


def _reasoning_text(item: dict[str, Any]) -> str:
    parts = [*(item.get("content") or ()), *(item.get("summary") or ())]
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


# -- request fields --------------------------------------------------------------------
def _check_fields(payload: dict[str, Any]) -> None:
    for name in payload:
        if name not in MAPPED and name not in IGNORED:
            raise field_error(name, "this field cannot be translated for a chat-only engine")
    if payload.get("background"):
        raise field_error("background", "background responses are not supported")


def _chat_tool(i: int, tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else tool
        raise field_error(
            f"tools[{i}].type",
            f"tools of type {kind!r} are not supported "
            "(only `function` tools can be served by this engine)",
        )
    parameters = tool.get("parameters") or {"type": "object", "properties": {}}
    return function_tool(
        tool.get("name"), parameters, tool.get("description"),
        strict=tool.get("strict", True) is not False,
    )  # fmt: skip


def _chat_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> Any:
    if choice == "required" and len(tools) == 1:
        return required_choice(tools)  # a named tool: the engine constrains it to its schema
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise field_error("tool_choice", f"{choice!r} is not supported")


def _reasoning(reasoning: Any, chat: dict[str, Any]) -> None:
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        chat["reasoning_effort"] = reasoning["effort"]


def _text_format(text: Any, chat: dict[str, Any]) -> None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return
    if fmt["type"] == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif fmt["type"] == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise field_error("text.format.type", f"{fmt['type']!r} is not supported")


# -- chat answer → output items --------------------------------------------------------
def output_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    thought = reasoning_of(message)
    if thought:
        items.append(_reasoning_item(new_id("rs_"), thought))
    if message.get("content"):
        items.append(_message_item(new_id("msg_"), str(message["content"]), "completed"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append(
            _call_item(
                new_id("fc_"),
                str(call.get("id")),
                str(function.get("name")),
                str(function.get("arguments") or ""),
                "completed",
            )
        )
    return items


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if text else []
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [],
        "content": content,
        "status": "completed",
    }


def _message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _call_item(item_id: str, call_id: str, name: str, args: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": args,
        "status": status,
    }


def _status(finish: str) -> str:
    return "incomplete" if finish == "length" else "completed"


def _usage(usage: tuple[int, int, int]) -> dict[str, Any]:
    prompt, completion, reasoning = usage
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


# -- streaming -------------------------------------------------------------------------
class ResponsesWriter(PieceWriter):
    """Chat chunks in, Responses events out. One open output item at a time."""

    def __init__(self, translation: ResponsesTranslation) -> None:
        self.t = translation
        self.seq = 0
        self.items: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None
        self.calls: dict[int, dict[str, Any]] = {}

    def finish(self) -> bytes:
        out = self._begin()
        out.extend(self._close())
        message = self._as_message()
        self.t._retain(message)
        final = self.t._response(
            self.items, self.finish_reason, self.usage, status=_status(self.finish_reason)
        )
        out.append(self._event("response.completed", {"response": final}))
        return b"".join(out)

    def fail(self, status: int, message: str, code: str) -> bytes:
        """OpenAI's stream error event; `status` has no place in it (the code names it)."""
        del status
        out = self._begin()
        out.append(self._event("error", {"code": code, "message": message, "param": None}))
        return b"".join(out)

    # -- events ------------------------------------------------------------------------
    def _event(self, kind: str, body: dict[str, Any]) -> bytes:
        body = {"type": kind, **body, "sequence_number": self.seq}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + codec.dumps(body) + b"\n\n"

    def _start(self) -> list[bytes]:
        shell = self.t._response([], "stop", None, status="in_progress")
        return [
            self._event("response.created", {"response": shell}),
            self._event("response.in_progress", {"response": shell}),
        ]

    def _piece(self, piece: Piece) -> list[bytes]:
        if piece.kind == "tool_args":
            return self._call_args(piece)
        out = self._ensure(piece)
        if piece.kind == "reasoning":
            out.append(self._delta("response.reasoning_text.delta", piece.text))
        elif piece.kind == "text":
            out.append(self._delta("response.output_text.delta", piece.text))
        return out

    def _ensure(self, piece: Piece) -> list[bytes]:
        """Open the item this piece belongs to, closing the one before if it differs."""
        want = {"reasoning": "reasoning", "text": "message", "tool_start": "function_call"}
        kind = want[piece.kind]
        if self.open is not None and self.open["type"] == kind and piece.kind != "tool_start":
            return []
        out = self._close()
        if kind == "reasoning":
            item = _reasoning_item(new_id("rs_"), "")
        elif kind == "message":
            item = _message_item(new_id("msg_"), None, "in_progress")
        else:
            item = _call_item(new_id("fc_"), piece.call_id, piece.name, "", "in_progress")
            self.calls[piece.index] = item
        item["status"] = "in_progress"
        self.open = item
        self.items.append(item)
        out.append(self._event("response.output_item.added", self._at({"item": dict(item)})))
        if kind == "message":
            out.append(
                self._event(
                    "response.content_part.added",
                    self._at({"item_id": item["id"], "content_index": 0, "part": _text_part("")}),
                )
            )
        item["_text"] = ""
        return out

    def _delta(self, kind: str, text: str) -> bytes:
        assert self.open is not None
        self.open["_text"] += text
        body = {"item_id": self.open["id"], "content_index": 0, "delta": text}
        if kind == "response.output_text.delta":
            body["logprobs"] = []
        return self._event(kind, self._at(body))

    def _call_args(self, piece: Piece) -> list[bytes]:
        item = self.calls.get(piece.index)
        if item is None:
            return []
        out: list[bytes] = []
        if self.open is not item:  # arguments for an earlier call: reopen is not possible
            item["arguments"] += piece.text
            return out
        item["arguments"] += piece.text
        body = {"item_id": item["id"], "delta": piece.text}
        out.append(self._event("response.function_call_arguments.delta", self._at(body)))
        return out

    def _at(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"output_index": len(self.items) - 1, **body}

    def _close(self) -> list[bytes]:
        item, self.open = self.open, None
        if item is None:
            return []
        text = item.pop("_text", "")
        item["status"] = "completed"
        out: list[bytes] = []
        if item["type"] == "reasoning":
            item["content"] = [{"type": "reasoning_text", "text": text}]
            out.append(
                self._event(
                    "response.reasoning_text.done",
                    self._index(item, {"item_id": item["id"], "content_index": 0, "text": text}),
                )
            )
        elif item["type"] == "message":
            item["content"] = [_text_part(text)]
            base = {"item_id": item["id"], "content_index": 0}
            out.append(
                self._event(
                    "response.output_text.done",
                    self._index(item, {**base, "text": text, "logprobs": []}),
                )
            )
            out.append(
                self._event(
                    "response.content_part.done",
                    self._index(item, {**base, "part": _text_part(text)}),
                )
            )
        else:
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    self._index(
                        item,
                        {
                            "item_id": item["id"],
                            "name": item["name"],
                            "arguments": item["arguments"],
                        },
                    ),
                )
            )
        out.append(self._event("response.output_item.done", self._index(item, {"item": item})))
        return out

    def _index(self, item: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return {"output_index": self.items.index(item), **body}

    def _as_message(self) -> dict[str, Any]:
        """The streamed answer as one chat message (for the retention store)."""
        message: dict[str, Any] = {"content": "", "tool_calls": []}
        for item in self.items:
            if item["type"] == "message":
                message["content"] += item["content"][0]["text"] if item["content"] else ""
            elif item["type"] == "reasoning":
                message["reasoning"] = item["content"][0]["text"] if item["content"] else ""
            else:
                message["tool_calls"].append(
                    {
                        "id": item["call_id"],
                        "type": "function",
                        "function": {"name": item["name"], "arguments": item["arguments"]},
                    }
                )
        return message
