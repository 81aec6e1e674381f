"""Send one streaming request and record its timeline (aiohttp; see docs/bench.md for why).

Stamps: `sent` when the request body reaches the socket (a trace hook), each block of the
stream when its bytes reach the connection (`ArrivalClock`); events are decoded after
their stamp, so JSON parsing never shifts a time. Events are classified into token chunks
(content, reasoning, tool call), the usage chunk, and the rest (role-only or empty
deltas), which are ignored for timing as guidellm and aiperf do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from corral.bench.timeline import ChunkKind, Timeline, Usage

Clock = Callable[[], float]


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: `base_url` (no `/v1`), the served model name, the API flavour."""

    base_url: str
    model: str
    api: str = "chat"  # "chat" → /v1/chat/completions; "completions" → /v1/completions
    api_key: str | None = None

    @property
    def url(self) -> str:
        path = "/v1/chat/completions" if self.api == "chat" else "/v1/completions"
        return self.base_url.rstrip("/") + path

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@dataclass
class _Wire:
    """Per-request trace context: the timeline whose `sent` the trace updates."""

    tl: Timeline
    clock: Clock


async def _body_sent(
    _session: aiohttp.ClientSession, ctx: Any, _params: aiohttp.TraceRequestChunkSentParams
) -> None:
    wire = ctx.trace_request_ctx
    if isinstance(wire, _Wire):
        wire.tl.sent = wire.clock()


def wire_trace() -> aiohttp.TraceConfig:
    """Re-stamp `sent` when the request body is handed to the socket. aiohttp writes the
    body from a task of its own (Python < 3.12), so on a busy loop the request leaves a
    loop turn or more after `session.post` is called; that wait is the client's, and
    counting it in TTFT would blame the server for it (it shows in queue delay instead)."""
    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(_body_sent)
    return trace


def build_payload(
    endpoint: Endpoint, prompt: str, max_tokens: int, *, ignore_eos: bool, extra: dict[str, Any]
) -> dict[str, Any]:
    """A streaming request that asks for usage in the last chunk. Sampling settings are
    the server's defaults unless `extra` sets them (as `vllm bench serve` does): they change
    the engine's step time (on the CPU engine, SmolLM2's requests took about 28 % less time
    greedy than at vLLM's default temperature 1.0 in two of three paired runs; see the
    cross-check in docs/bench.md)."""
    body: dict[str, Any] = {
        "model": endpoint.model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
    }
    if endpoint.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if ignore_eos:
        body["ignore_eos"] = True
    body.update(extra)
    return body


def _classify(choice: dict[str, Any]) -> tuple[ChunkKind | None, str]:
    """What a choice carries: (kind, text). `empty` is a token step whose text is empty (a
    special token, or the first bytes of a character the detokenizer holds back): the
    engine sends a chunk per step, so it counts for TTFT, as in `vllm bench serve`. Kind
    None: the role-only delta, or a closing choice with nothing but a finish reason."""
    delta = choice.get("delta")
    if delta is None:  # /v1/completions
        text = choice.get("text")
        return _text_kind(text, choice), text or ""
    if delta.get("tool_calls"):
        return "tool", ""
    reasoning = delta.get("reasoning") or delta.get("reasoning_content")
    if reasoning and not delta.get("content"):
        return "reasoning", reasoning
    if "role" in delta:
        return ("content" if delta.get("content") else None), delta.get("content") or ""
    return _text_kind(delta.get("content"), choice), delta.get("content") or ""


def _text_kind(text: str | None, choice: dict[str, Any]) -> ChunkKind | None:
    if text:
        return "content"
    return "empty" if text == "" and not choice.get("finish_reason") else None


def record_event(tl: Timeline, data: dict[str, Any], at: float, keep_text: bool) -> None:
    """Fold one decoded stream event into the timeline."""
    if "error" in data:
        # An engine that fails mid-stream (gpt-oss's HarmonyError, say) sends an error event
        # and may still end with [DONE]: the request failed, whatever arrived before it.
        tl.error = f"error event mid-stream: {_error_text(data['error'])}"
        return
    usage = data.get("usage")
    if usage:
        tl.usage = Usage.from_json(usage)
    for choice in data.get("choices") or ():
        kind, text = _classify(choice)
        if choice.get("finish_reason"):
            tl.finish_reason = choice["finish_reason"]
        if kind is None:
            continue
        tl.add_chunk(at, kind)
        if "x_t" in data:
            tl.server_times.append(data["x_t"])
            tl.server_recv = data.get("x_recv")
        if keep_text and text:
            if kind == "reasoning":
                tl.reasoning_text += text
            else:
                tl.content_text += text


def _events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines of `buffer`, and the unfinished tail."""
    *lines, tail = buffer.split(b"\n")
    return lines, tail


async def _drain(response: aiohttp.ClientResponse, grace: float = 1.0) -> None:
    """Read the end of the HTTP response after `[DONE]` (the chunked terminator), so the
    connection goes back to the pool. Leaving it unread makes aiohttp close it, and every
    next request then pays a new TCP connection, accepted by a server that may be busy."""
    # A server that keeps the stream open after [DONE] times out here: the connection is
    # dropped instead of reused.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(response.content.read(), grace)


class ArrivalClock:
    """The time bytes reached the connection's protocol (`data_received`), not the time the
    reading coroutine resumed. With hundreds of streams ready in one loop turn, coroutines
    resume one after another, and stamping at resumption would make the last ones late by
    the others' processing. Wraps the protocol instance's `data_received` (aiohttp's
    `ResponseHandler`); if that is not possible, it falls back to stamping at resumption."""

    def __init__(self, response: aiohttp.ClientResponse, clock: Clock) -> None:
        self.clock = clock
        self.pending: float | None = None
        protocol = response.connection.protocol if response.connection else None
        original = getattr(protocol, "data_received", None)
        if protocol is None or original is None:
            return

        def data_received(data: bytes) -> None:
            if self.pending is None:
                self.pending = clock()
            original(data)

        protocol.data_received = data_received  # type: ignore[method-assign]
        self._restore = (protocol, original)

    def take(self) -> float:
        """When the bytes now being read first arrived (now, if unknown)."""
        at = self.pending if self.pending is not None else self.clock()
        self.pending = None
        return at

    def close(self) -> None:
        restore = getattr(self, "_restore", None)
        if restore is not None:
            protocol, _ = restore
            del protocol.data_received  # back to the class's method for the next user


async def _read_stream(
    response: aiohttp.ClientResponse, tl: Timeline, clock: Clock, keep_text: bool
) -> None:
    arrival = ArrivalClock(response, clock)
    try:
        await _read_events(response, tl, arrival, keep_text)
    finally:
        arrival.close()


async def _read_events(
    response: aiohttp.ClientResponse, tl: Timeline, arrival: ArrivalClock, keep_text: bool
) -> None:
    """Read whatever bytes have arrived, stamp them once, then split them into events:
    events that arrive in one read arrived together (and this takes a fifth of the calls
    of reading line by line, which matters at thousands of chunks a second)."""
    tail = b""
    async for block in response.content.iter_any():
        at = arrival.take()
        lines, tail = _events(tail + block)
        for raw in lines:
            if not raw.startswith(b"data:"):
                continue  # blank separators, comments (": ping"), `event:` lines
            payload = raw[5:].strip()
            if payload == b"[DONE]":
                await _drain(response)
                return
            try:
                data = json.loads(payload)
            except ValueError:
                tl.error = f"malformed stream event: {payload[:80]!r}"
                return
            record_event(tl, data, at, keep_text)
            if tl.error is not None:
                return
    # The connection closed without `data: [DONE]`: a truncated reply, not a success.
    tl.error = tl.error or "the stream ended without data: [DONE]"


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)
    return str(error)


async def http_error(resp: aiohttp.ClientResponse) -> str:
    """`HTTP 404 Not Found`, with the message of a JSON error body; never an HTML page."""
    line = f"HTTP {resp.status} {resp.reason or ''}".rstrip()
    if "json" not in resp.content_type:
        return line
    try:
        body = json.loads(await resp.read())
    except ValueError:
        return line
    error = body.get("error") if isinstance(body, dict) else None
    message = (
        _error_text(error) if error else body.get("message") if isinstance(body, dict) else None
    )
    return f"{line}: {str(message)[:200]}" if message else line


async def _post(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    body: bytes,
    tl: Timeline,
    clock: Clock,
    *,
    keep_text: bool,
) -> None:
    async with session.post(
        endpoint.url, data=body, headers=endpoint.headers(), trace_request_ctx=_Wire(tl, clock)
    ) as resp:
        tl.status = resp.status
        if resp.status != 200:
            tl.error = await http_error(resp)
        else:
            await _read_stream(resp, tl, clock, keep_text)


async def stream_request(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    payload: dict[str, Any],
    tl: Timeline,
    *,
    clock: Clock = time.perf_counter,
    keep_text: bool = False,
) -> Timeline:
    """POST `payload` and fill `tl` (sent, chunks, usage, end, error). Never raises for
    HTTP or connection errors: they become `tl.error`, so one failure doesn't end a run."""
    body = json.dumps(payload).encode()
    for attempt in (1, 2):
        tl.sent = clock()
        try:
            await _post(session, endpoint, body, tl, clock, keep_text=keep_text)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if attempt == 1 and not tl.status and not tl.chunk_times:
                # A pooled keep-alive connection the server had closed: llama-server closes
                # after every streamed answer though it says keep-alive, so every other
                # request met a dead socket. No answer began; send once more on a new one.
                continue
            tl.error = f"{type(exc).__name__}: {exc}"
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            tl.error = f"{type(exc).__name__}: {exc}"
        break
    tl.end = clock()
    if tl.error is None and not tl.chunk_times:
        tl.error = "the stream carried no token"
    return tl
