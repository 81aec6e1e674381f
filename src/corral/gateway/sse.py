"""Relay a server-sent-event stream from an engine, rewriting each `data:` event.

The relay is fed raw bytes as they arrive and returns the bytes to send on, so one read
from the engine becomes at most one write to the client. Events are split on a blank line
(`\\n\\n`, what vLLM, SGLang and llama-server send). An event that is not JSON passes
through unchanged: the gateway does not repair an engine's output, it only must not
hang or crash on it.
"""

from __future__ import annotations

from typing import Any

from corral.gateway import codec, strict
from corral.gateway.errors import error_dict
from corral.gateway.normalize import (
    Tokens,
    has_reasoning_delta,
    is_usage_chunk,
    normalize,
    read_usage,
)
from corral.gateway.translate.chat import ChatAccumulator

DONE = b"data: [DONE]\n\n"


def sse_event(obj: dict[str, Any]) -> bytes:
    return b"data: " + codec.dumps(obj) + b"\n\n"


def client_chunk(obj: dict[str, Any], requested: str, *, wants_usage: bool) -> bytes:
    """One decoded chat/completions chunk as the client gets it: its usage only if the
    client asked (the usage-only chunk not at all), the strict-schema fixes, the model name
    the client asked for."""
    if not wants_usage and "usage" in obj:
        if is_usage_chunk(obj):
            return b""
        del obj["usage"]
    strict.conform(obj)
    normalize(obj, requested)
    return sse_event(obj)


def error_event(status: int, message: str, code: str) -> bytes:
    """The event that ends a stream the gateway had to cut (engine hung or died)."""
    return sse_event(error_dict(status, message, code=code))


class SseRelay:
    """Normalizes an OpenAI chat/completions stream chunk by chunk and counts tokens."""

    def __init__(
        self,
        requested: str,
        *,
        wants_usage: bool,
        rewrite: bool = True,
        served: str | None = None,
        observe: bool = False,
    ) -> None:
        self.requested = requested
        # Fast path: most chunks need only the model name swapped (or nothing at all), which
        # a byte replace does without decoding. `"model":"<served>"` can only occur as a real
        # key: inside JSON strings the quotes are escaped. No match → the full path.
        self._model_from = b'"model":' + codec.dumps(served) if served else b""
        self._model_to = b'"model":' + codec.dumps(requested)
        self.wants_usage = wants_usage
        self.rewrite = rewrite
        self.tokens = Tokens()
        self.reasoning_chunks = 0
        self.done = False
        self.events = 0
        self._buffer = b""
        # observe: fold the chunks back into the answer (reasoning memory, gpt-oss), which
        # means decoding chunks with tool calls too.
        self.answer: ChatAccumulator | None = ChatAccumulator() if observe else None

    def feed(self, data: bytes) -> bytes:
        """Bytes to send on for `data` (complete events only; a partial one waits)."""
        if not self.rewrite:
            return self._passed(data)
        buffer = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        start = 0
        while not self.done:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            piece = self._event(buffer[start:end])
            if piece:
                out.append(piece)
            start = end + 2
        self._buffer = buffer[start:] if not self.done else b""
        return b"".join(out)

    def _passed(self, data: bytes) -> bytes:
        """A pass-through stream (Responses, Messages): only the model name is swapped,
        on whole events, so the client sees the name it asked for either way."""
        self.events += data.count(b"\n\n")
        if not self._model_from or self._model_from == self._model_to:
            return data
        buffer = self._buffer + data
        cut = buffer.rfind(b"\n\n") + 2
        self._buffer = buffer[cut:]
        return buffer[:cut].replace(self._model_from, self._model_to)

    def finish(self) -> bytes:
        """What to send after the engine's last byte: any unterminated event, then [DONE]."""
        tail = b""
        if not self.rewrite:
            tail, self._buffer = self._buffer, b""
            return tail.replace(self._model_from, self._model_to) if self._model_from else tail
        if self._buffer.strip() and not self.done:
            tail = self._event(self._buffer.strip())
        self._buffer = b""
        if not self.done and self.rewrite:
            self.done = True
            tail += DONE
        return tail

    def _event(self, event: bytes) -> bytes:
        self.events += 1
        if not event.startswith(b"data:"):
            return event + b"\n\n"
        payload = event[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return DONE
        quick = self._quick(payload)
        if quick is not None:
            return quick
        try:
            obj = codec.loads(payload)
        except ValueError:
            return event + b"\n\n"
        if not isinstance(obj, dict):
            return event + b"\n\n"
        return self._chunk(obj)

    def _quick(self, payload: bytes) -> bytes | None:
        """The event without decoding it, when nothing but the model name needs changing."""
        if b'"usage"' in payload or b'"reasoning' in payload or b'"error"' in payload:
            return None
        if self.answer is not None and b'"tool_calls"' in payload:
            return None
        if self._model_from and self._model_from != self._model_to:
            if self._model_from not in payload:
                return None
            payload = payload.replace(self._model_from, self._model_to, 1)
        return b"data: " + payload + b"\n\n"

    def _chunk(self, obj: dict[str, Any]) -> bytes:
        if "usage" in obj:
            read_usage(obj, self.tokens)
        if isinstance(obj.get("error"), dict):
            obj["error"].setdefault("source", "engine")
        elif has_reasoning_delta(obj):
            self.reasoning_chunks += 1
        if self.answer is not None:
            self.answer.feed(obj)
        return client_chunk(obj, self.requested, wants_usage=self.wants_usage)

    def cut(self, status: int, message: str, code: str) -> bytes:
        """The end of a stream the engine broke: an error event and [DONE], once."""
        if self.done:
            return b""
        self.done = True
        return error_event(status, message, code) + DONE
