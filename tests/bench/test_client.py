"""The HTTP client against the scripted engine: connection reuse, stamps, failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from corral.bench.client import Endpoint, build_payload, stream_request
from corral.bench.load import make_session
from corral.bench.timeline import Timeline
from tests.support.scripted import RunningEngine, scripted_engine


@pytest.fixture(scope="module")
def engine() -> Iterator[RunningEngine]:
    with scripted_engine("--tokens", "5", "--itl", "0.001", "--stamp") as running:
        yield running


async def _late_end(request: web.Request) -> web.StreamResponse:
    """A stream whose HTTP end comes 50 ms after `[DONE]` (as from a busy server)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    chunk = {"choices": [{"index": 0, "text": "tok ", "finish_reason": "length"}]}
    await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n")
    await asyncio.sleep(0.05)
    await response.write_eof()
    return response


async def test_a_finished_stream_returns_its_connection_to_the_pool() -> None:
    created: list[int] = []

    async def on_create(_s: Any, _ctx: SimpleNamespace, _p: Any) -> None:
        created.append(1)

    app = web.Application()
    app.router.add_post("/v1/completions", _late_end)
    counting = aiohttp.TraceConfig()
    counting.on_connection_create_end.append(on_create)
    async with TestServer(app, host="127.0.0.1") as server:
        endpoint = Endpoint(str(server.make_url("")).rstrip("/"), "m", api="completions")
        payload = build_payload(endpoint, "hi", 1, ignore_eos=False, extra={})
        async with make_session(1, traces=[counting]) as session:
            for _ in range(5):
                tl = await stream_request(session, endpoint, payload, Timeline(scheduled=0.0))
                assert tl.ok
    assert len(created) == 1


async def test_sent_is_stamped_when_the_body_leaves_and_engine_stamps_are_kept(
    engine: RunningEngine,
) -> None:
    endpoint = Endpoint(engine.base_url, "scripted", api="chat")
    payload = build_payload(endpoint, "hi", 5, ignore_eos=True, extra={})
    ticks = iter(range(1, 10_000))
    async with make_session(1) as session:
        tl = await stream_request(session, endpoint, payload, Timeline(scheduled=0.0),
                                  clock=lambda: float(next(ticks)))  # fmt: skip
    assert tl.sent == 2.0  # 1 before session.post, re-stamped by the trace when the body went
    assert tl.chunk_times[0] > tl.sent
    assert len(tl.server_times) == 5
    assert tl.server_recv is not None
    assert tl.usage is not None
    assert tl.usage.completion_tokens == 5


async def test_http_errors_and_refused_connections_become_timeline_errors(
    engine: RunningEngine,
) -> None:
    endpoint = Endpoint(engine.base_url, "no-such-model", api="chat")
    payload = build_payload(endpoint, "hi", 5, ignore_eos=False, extra={})
    async with make_session(1) as session:
        tl = await stream_request(session, endpoint, payload, Timeline(scheduled=0.0))
        assert tl.error is not None
        assert tl.error.startswith("HTTP 404")
        dead = Endpoint("http://127.0.0.1:9", "x")
        tl = await stream_request(session, dead, payload, Timeline(scheduled=0.0))
    assert tl.error is not None
    assert "Connect" in tl.error
    assert not tl.ok


async def test_a_malformed_stream_is_an_error() -> None:
    with scripted_engine("--tokens", "3", "--malformed") as eng:
        endpoint = Endpoint(eng.base_url, "scripted", api="chat")
        payload = build_payload(endpoint, "hi", 3, ignore_eos=False, extra={})
        async with aiohttp.ClientSession() as session:
            tl = await stream_request(session, endpoint, payload, Timeline(scheduled=0.0))
    assert tl.error is not None
    assert tl.error.startswith("malformed stream event")


@pytest.mark.parametrize(
    ("quirk", "expected"),
    [
        ("harmony-error", "error event mid-stream"),
        ("no-done", "the stream ended without data: [DONE]"),
    ],
)
async def test_a_stream_that_fails_midway_is_not_a_success(quirk: str, expected: str) -> None:
    """Tokens arrived, but the engine then reported an error or the stream just stopped."""
    with scripted_engine("--tokens", "4", "--quirk", quirk) as eng:
        endpoint = Endpoint(eng.base_url, "scripted", api="chat")
        payload = build_payload(endpoint, "hi", 4, ignore_eos=False, extra={})
        async with aiohttp.ClientSession() as session:
            tl = await stream_request(session, endpoint, payload, Timeline(scheduled=0.0))
    assert tl.chunk_times  # some output did arrive first
    assert tl.error is not None
    assert tl.error.startswith(expected)
    assert not tl.ok
