"""The streaming side of a translation: an engine's chat SSE in, the client's API's events out.

Same interface as `corral.gateway.sse.SseRelay` (feed / finish / cut, `tokens`, `done`),
so the proxy pumps either one. The engine's `data: [DONE]` (or its end) finishes the
API's stream; an engine error event, or a stream the proxy cuts (engine died, timeout),
becomes the API's own error event, after which the proxy closes the connection.
"""

from __future__ import annotations

from typing import Any, Protocol

from corral.gateway import codec
from corral.gateway.normalize import has_reasoning_delta, read_usage
from corral.gateway.sse import SseRelay
from corral.gateway.translate.chat import ChatAccumulator


class Writer(Protocol):
    """One API's stream writer (responses.ResponsesWriter, messages.MessagesWriter)."""

    def chunk(self, chunk: dict[str, Any]) -> bytes: ...
    def finish(self) -> bytes: ...
    def fail(self, status: int, message: str, code: str) -> bytes: ...


class TranslatingRelay(SseRelay):
    """SseRelay's event splitting, with each chat event turned into the API's events."""

    def __init__(self, writer: Writer) -> None:
        super().__init__("", wants_usage=True)
        self.writer = writer
        self.folded = ChatAccumulator()
        self.answer = self.folded

    def finish(self) -> bytes:
        tail = self._event(self._buffer.strip()) if self._buffer.strip() else b""
        self._buffer = b""
        if self.done:
            return tail
        self.done = True
        return tail + self.writer.finish()

    def cut(self, status: int, message: str, code: str) -> bytes:
        if self.done:
            return b""
        self.done = True
        return self.writer.fail(status, message, code)

    def _event(self, event: bytes) -> bytes:  # overrides SseRelay's: called per event
        self.events += 1
        if not event.startswith(b"data:") or self.done:
            return b""
        payload = event[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return self.writer.finish()
        try:
            chunk = codec.loads(payload)
        except ValueError:
            return b""  # not JSON: nothing a translated client could use
        if not isinstance(chunk, dict):
            return b""
        return self._chunk(chunk)

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        error = chunk.get("error")
        if isinstance(error, dict):
            self.done = True
            message = str(error.get("message") or "the engine reported an error")
            return self.writer.fail(502, message, str(error.get("code") or "engine_error"))
        read_usage(chunk, self.tokens)
        if has_reasoning_delta(chunk):
            self.reasoning_chunks += 1
        self.folded.feed(chunk)
        return self.writer.chunk(chunk)
