"""What a streaming client sees while its on-demand deployment starts: SSE comments.

    notice = StartNotice(request, stream=True)
    await on_demand.ensure(model, notice)      # ": starting load_weights 3.1s" each second
    ex.early = notice.response                 # the stream goes on in the same response

SSE comments (lines starting with `:`) are ignored by every SSE client (the openai SDK
included), so they carry progress without breaking the stream. Once a comment went out
the status is 200: an error after that (the start failed) is an error event, then [DONE].
A non-streaming client simply waits (nothing is sent until the answer).
"""

from __future__ import annotations

from aiohttp import web

from corral.gateway.errors import HttpError
from corral.gateway.sse import DONE, error_event

__all__ = ["SSE_HEADERS", "StartNotice"]

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


class StartNotice:
    def __init__(self, request: web.BaseRequest, *, stream: bool) -> None:
        self.request = request
        self.stream = stream
        self.response: web.StreamResponse | None = None

    async def __call__(self, text: str) -> None:
        if not self.stream:
            return
        if self.response is None:
            self.response = web.StreamResponse(status=200, headers=SSE_HEADERS)
            await self.response.prepare(self.request)
        await self.response.write(f": {text}\n\n".encode())

    async def fail(self, exc: HttpError) -> web.StreamResponse:
        """End the already-started stream with the error as an event."""
        assert self.response is not None
        await self.response.write(error_event(exc.status, exc.message, exc.code or "error"))
        await self.response.write(DONE)
        await self.response.write_eof()
        return self.response
