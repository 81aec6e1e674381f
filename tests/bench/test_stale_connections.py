"""A server that closes its connection after every streamed answer while the response says
keep-alive (llama-server does: on an H200 half of a `bench serve` sweep's requests failed with
ServerDisconnectedError, docs/examples/h200-session.md). The client sends such a request once
more on a new connection instead of counting a failure the server never saw."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from aiohttp.test_utils import TestServer

from corral.bench.client import Endpoint, build_payload, stream_request
from corral.bench.load import make_session
from corral.bench.timeline import Timeline

seen: list[int] = []


async def _answer_then_close(request: web.Request) -> web.StreamResponse:
    seen.append(1)
    await asyncio.sleep(0.05)  # a request that arrives on a closing socket dies here
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    chunk = {"choices": [{"index": 0, "text": "tok ", "finish_reason": "length"}]}
    await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n")
    await response.write_eof()
    transport = request.transport
    assert transport is not None
    # The socket goes a moment after the answer, when the client has already sent its next
    # request on it (it was told keep-alive).
    asyncio.get_running_loop().call_later(0.02, transport.close)
    return response


async def test_requests_on_a_connection_the_server_closed_are_sent_again() -> None:
    seen.clear()
    app = web.Application()
    app.router.add_post("/v1/completions", _answer_then_close)
    async with TestServer(app, host="127.0.0.1") as server:
        endpoint = Endpoint(str(server.make_url("")).rstrip("/"), "m", api="completions")
        payload = build_payload(endpoint, "hi", 1, ignore_eos=False, extra={})
        async with make_session(1) as session:
            timelines = [await stream_request(session, endpoint, payload, Timeline(scheduled=0.0))
                         for _ in range(6)]  # fmt: skip
    assert [tl.error for tl in timelines] == [None] * 6
    assert len(seen) >= 6  # a request cut off on a dead socket was sent again
