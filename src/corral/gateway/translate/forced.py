"""Forced tool calls for a deployment whose model cannot call tools (`capabilities.tools: false`).

SmolLM2's chat template has no tool format, so llama-server answers every `tool_choice`
in text (docs/llama-server.md). A request that forces a tool (a named one, or `required`
/ `any`), whether Chat Completions or a translated Responses or Messages request, is sent
to such a deployment as a JSON-constrained chat request instead: `response_format:
json_schema` with the tool's parameters (one tool) or, for several, `anyOf` over
`{"name": const, "arguments": …}`.
llama-server compiles the schema into a grammar (read: tools/server/README.md,
`response_format`; measured here: `{"numbers": [2, 3]}` for "Add 2 and 3."). The JSON
text of the answer becomes the tool call the API's translation expects: a stream's text
deltas become argument deltas (one tool) or one whole call at the end (several).

    forced = ForcedTool.of(chat_body)            # None: the request forces no tool
    translation = Forced(translation, forced)    # same interface as the translation
    translation = Forced(ChatAsIs(chat_body, requested), forced)   # Chat Completions itself
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from corral.gateway import limits, strict
from corral.gateway.sse import DONE, client_chunk, error_event
from corral.gateway.translate.chat import field_error, new_id
from corral.gateway.translate.relay import Writer


class ChatTranslation(Protocol):
    def chat_request(self) -> dict[str, Any]: ...
    def from_chat(self, answer: dict[str, Any]) -> dict[str, Any]: ...
    def writer(self) -> Writer: ...


class ForcedTool:
    """One forced tool choice, answered as constrained JSON and turned back into a call."""

    def __init__(self, tools: list[dict[str, Any]], name: str | None) -> None:
        self.tools = {t["function"]["name"]: t["function"] for t in tools}
        if name is not None and name not in self.tools:
            raise field_error("tool_choice", f"names `{name}`, which is not among the tools")
        self.name = name if name is not None or len(tools) > 1 else tools[0]["function"]["name"]
        self.call_id = new_id("call_")
        self.text = ""  # several tools: the streamed JSON, read whole at the end
        self.opened = False

    @classmethod
    def of(cls, chat: dict[str, Any]) -> ForcedTool | None:
        tools, choice = chat.get("tools"), chat.get("tool_choice")
        if not tools:
            return None
        if isinstance(choice, dict):
            return cls(tools, str(choice["function"]["name"]))
        return cls(tools, None) if choice == "required" else None

    # -- request -----------------------------------------------------------------------
    def request(self, chat: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in chat.items() if k not in ("tools", "tool_choice")}
        body.pop("parallel_tool_calls", None)
        body["messages"] = [self._instruction(), *chat["messages"]]
        schema = {"name": self.name or "tool_call", "schema": self._schema(), "strict": True}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
        return body

    def _schema(self) -> dict[str, Any]:
        if self.name is not None:
            return dict(self.tools[self.name].get("parameters") or {"type": "object"})
        return {"anyOf": [_named_call(name, f) for name, f in self.tools.items()]}

    def _instruction(self) -> dict[str, Any]:
        described = "; ".join(f"{n}: {f.get('description', '')}" for n, f in self.tools.items())
        if self.name is not None:
            ask = f"Answer only with the JSON arguments of the tool `{self.name}`."
        else:
            ask = 'Answer only with JSON: {"name": <a tool>, "arguments": {...}}.'
        return {"role": "system", "content": f"Tools: {described}. {ask}"}

    # -- answer ------------------------------------------------------------------------
    def answer(self, chat_answer: dict[str, Any]) -> dict[str, Any]:
        """A whole chat answer with the JSON text turned into the forced tool call."""
        choice = chat_answer["choices"][0]
        message = choice.get("message") or {}
        name, arguments = self._call(str(message.get("content") or ""))
        call = {"id": self.call_id, "type": "function",
                "function": {"name": name, "arguments": arguments}}  # fmt: skip
        choice["message"] = {**message, "content": None, "tool_calls": [call]}
        if choice.get("finish_reason") == "stop":
            choice["finish_reason"] = "tool_calls"
        return chat_answer

    def _call(self, text: str) -> tuple[str, str]:
        if self.name is not None:
            return self.name, text
        try:
            parsed = json.loads(text)
            return str(parsed["name"]), json.dumps(parsed["arguments"])
        except (ValueError, KeyError, TypeError):
            return next(iter(self.tools)), text  # cut short: the client sees what came

    def chunks(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """One stream chunk as the chunks an engine calling the tool would have sent."""
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return [chunk]
        choice = choices[0]
        text = (choice.get("delta") or {}).get("content")
        out: list[dict[str, Any]] = []
        if isinstance(text, str) and text:
            choice["delta"] = {k: v for k, v in choice["delta"].items() if k != "content"}
            out.extend(self._argument_pieces(chunk, text))
        finish = choice.get("finish_reason")
        if finish in ("stop", "length"):
            choice["finish_reason"] = "tool_calls" if finish == "stop" else finish
            out.extend(self._whole_call(chunk))
        return [*out, chunk]

    def _argument_pieces(self, chunk: dict[str, Any], text: str) -> list[dict[str, Any]]:
        if self.name is None:
            self.text += text  # several tools: the name is known only from the whole JSON
            return []
        return [_with_call(chunk, self._call_delta(self.name, text))]

    def _whole_call(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if self.name is not None:
            return [] if self.opened else [_with_call(chunk, self._call_delta(self.name, ""))]
        name, arguments = self._call(self.text)
        return [_with_call(chunk, self._call_delta(name, arguments))]

    def _call_delta(self, name: str, arguments: str) -> dict[str, Any]:
        delta: dict[str, Any] = {"index": 0, "function": {"arguments": arguments}}
        if not self.opened:
            self.opened = True
            delta |= {"id": self.call_id, "type": "function"}
            delta["function"]["name"] = name
        return delta


def _named_call(name: str, function: dict[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters") or {"type": "object"}
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _with_call(chunk: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    """A copy of `chunk` whose choice carries only this tool-call delta."""
    choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}
    return {**{k: v for k, v in chunk.items() if k != "usage"}, "choices": [choice]}


class Forced:
    """A Responses or Messages translation whose forced tool is answered as JSON."""

    def __init__(self, inner: ChatTranslation, forced: ForcedTool) -> None:
        self.inner = inner
        self.forced = forced

    def chat_request(self) -> dict[str, Any]:
        return self.forced.request(self.inner.chat_request())

    def from_chat(self, answer: dict[str, Any]) -> dict[str, Any]:
        return self.inner.from_chat(self.forced.answer(answer))

    def writer(self) -> ForcedWriter:
        return ForcedWriter(self.inner.writer(), self.forced)


class ForcedWriter:
    def __init__(self, inner: Writer, forced: ForcedTool) -> None:
        self.inner = inner
        self.forced = forced

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return b"".join(self.inner.chunk(piece) for piece in self.forced.chunks(chunk))

    def finish(self) -> bytes:
        return self.inner.finish()

    def fail(self, status: int, message: str, code: str) -> bytes:
        return self.inner.fail(status, message, code)


class ChatAsIs:
    """A Chat Completions request taken through the translation path unchanged, so that
    `Forced` can answer its forced tool as JSON: chat in, chat out (the model name the
    client asked for, strict-schema fixes, the usage chunk only if the client asked).

    The finish reason is what an engine that calls tools gives: `tool_calls` for
    `required`, `stop` for a named tool (OpenAI's and vLLM's answer to a named
    `tool_choice`; measured on vLLM 0.32)."""

    def __init__(self, chat: dict[str, Any], requested: str) -> None:
        self.chat = chat
        self.requested = requested
        self.wants_usage = limits.wants_usage(chat)
        self.named = isinstance(chat.get("tool_choice"), dict)

    def chat_request(self) -> dict[str, Any]:
        return self.chat

    def from_chat(self, answer: dict[str, Any]) -> dict[str, Any]:
        _finish_as_asked(answer, self.named)
        strict.conform(answer)
        return answer

    def writer(self) -> ChatWriter:
        return ChatWriter(self.requested, wants_usage=self.wants_usage, named=self.named)


def _finish_as_asked(obj: dict[str, Any], named: bool) -> None:
    for choice in obj.get("choices") or ():
        if named and isinstance(choice, dict) and choice.get("finish_reason") == "tool_calls":
            choice["finish_reason"] = "stop"


class ChatWriter:
    """Chat chunks out as chat SSE events, as the pass-through relay would send them."""

    def __init__(self, requested: str, *, wants_usage: bool, named: bool) -> None:
        self.requested = requested
        self.wants_usage = wants_usage
        self.named = named

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        _finish_as_asked(chunk, self.named)
        return client_chunk(chunk, self.requested, wants_usage=self.wants_usage)

    def finish(self) -> bytes:
        return DONE

    def fail(self, status: int, message: str, code: str) -> bytes:
        return error_event(status, message, code) + DONE
