"""Forward one request to a replica and relay the answer: open → relay (whole or stream).

Failover: a connect error, or a 5xx before any byte went to the client, is retried once on
another replica (never the same one, never after the client got a byte). Each failure
counts toward that replica's breaker (balance.py).

Timeouts (per deployment, else the gateway's): `connect` for the TCP connect; `first_byte`
until the engine's response headers and, for a stream, its first event; `idle` between
stream reads; `total` for the whole exchange. A stream that the engine stops feeding, or
drops mid-answer, ends for the client with an error event and `data: [DONE]`.

Cancellation: the server runs with handler cancellation, so a client that goes away
cancels the handler task; leaving the `try` closes the engine connection (not returned to
the pool), which is how vLLM learns to abort the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from corral.config import Timeouts
from corral.fleet import Replica
from corral.gateway import codec, strict
from corral.gateway.balance import Balancer
from corral.gateway.errors import HttpError, engine_error_body
from corral.gateway.normalize import Tokens, normalize, read_usage
from corral.gateway.routing import Route
from corral.gateway.sse import SseRelay
from corral.gateway.starting import SSE_HEADERS
from corral.gateway.translate import messages
from corral.gateway.translate.relay import TranslatingRelay

if TYPE_CHECKING:
    from corral.gateway.apis import Translation

JSON_HEADERS = {"Content-Type": "application/json"}


def _upstream_headers(replica: Replica) -> dict[str, str]:
    """An unmanaged endpoint may want its own key; corral's engines want none."""
    if replica.api_key is None:
        return JSON_HEADERS
    return {**JSON_HEADERS, "Authorization": f"Bearer {replica.api_key}"}


RETRYABLE = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


CLIENT_CLOSED = 499  # nginx's status for "client closed the request"; metrics only


class ClientGone(Exception):
    """Writing to the client failed: it went away. Not the engine's fault.

    Internal control flow between `_send` and `forward`; it never leaves the gateway.
    """

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("client went away")
        self.response = response


async def _send(response: web.StreamResponse, data: bytes, *, eof: bool = False) -> None:
    """Write to the client; a vanished client becomes ClientGone (not an engine failure)."""
    try:
        if eof:
            await response.write_eof()
        else:
            await response.write(data)
    except (ConnectionError, aiohttp.ClientConnectionResetError) as exc:
        raise ClientGone(response) from exc


@dataclass
class Exchange:
    """One client request on its way through: what was asked and what happened."""

    path: str
    route: Route
    body: bytes
    stream: bool
    wants_usage: bool
    rewrite: bool
    started: float  # the gateway's clock: for metrics
    timeouts: Timeouts
    deadline: float = 0.0  # the event loop's clock: when the `total` timeout ends
    replica: Replica | None = None
    status: int = 0
    first_at: float | None = None
    gaps: list[float] = field(default_factory=list)
    tokens: Tokens = field(default_factory=Tokens)
    reasoning_chunks: int = 0
    retried: bool = False
    translation: Translation | None = None  # Responses/Messages served through chat
    on_answer: Callable[[dict[str, Any]], None] | None = None  # sees the chat answer
    anthropic: bool = False  # errors in Anthropic's shape
    reshape: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # tokens.py: an
    # engine's own /tokenize answer in the gateway's shape
    early: web.StreamResponse | None = None  # already started (on-demand start comments)

    def error_body(self, status: int, raw: bytes) -> bytes:
        body = engine_error_body(status, raw)
        return messages.error_from_openai(status, body) if self.anthropic else body


@dataclass
class Opened:
    replica: Replica
    response: aiohttp.ClientResponse


class Upstream:
    """Talks to engines through one shared aiohttp session."""

    def __init__(
        self, session: aiohttp.ClientSession, balancer: Balancer, clock: Callable[[], float]
    ) -> None:
        self.session = session
        self.balancer = balancer
        self.clock = clock
        self._client_timeouts: dict[float, aiohttp.ClientTimeout] = {}

    async def forward(self, request: web.BaseRequest, ex: Exchange) -> web.StreamResponse:
        """Open on a replica (with one failover), then relay the answer to the client."""
        opened = await self._open_with_failover(ex)
        ex.replica = opened.replica
        outcome = "abandoned"  # the client left (cancelled) unless set below
        try:
            if ex.stream and opened.response.status == 200:
                response = await self._relay_stream(request, ex, opened.response)
            else:
                response = await self._relay_whole(ex, opened.response)
            outcome = "failed" if ex.status >= 500 else "ok"
            return response
        except ClientGone as gone:
            ex.status = CLIENT_CLOSED
            return gone.response
        except HttpError:
            outcome = "failed"
            raise
        finally:
            self._settle(opened, outcome)

    def _settle(self, opened: Opened, outcome: str) -> None:
        """Give the connection back (or close it if the answer was cut) and tell the breaker."""
        replica_id = opened.replica.id
        if outcome == "ok":
            opened.response.release()
        else:
            opened.response.close()  # unread body: closing is what makes the engine abort
        self.balancer.end(replica_id)
        if outcome == "failed":
            self.balancer.failed(replica_id)
        elif outcome == "abandoned":
            self.balancer.abandon(replica_id)

    # -- open ------------------------------------------------------------------------
    async def _open_with_failover(self, ex: Exchange) -> Opened:
        """Open, failing over once; a HarmonyError answer is retried once more (gpt-oss).

        gpt-oss sometimes samples tokens vLLM's harmony parser rejects (`HarmonyError:
        unexpected tokens remaining in message header`); the same request usually succeeds
        when sampled again. A second HarmonyError is reported as such (502, harmony_error).
        """
        try:
            return await self._open_any(ex)
        except HttpError as exc:
            if not _is_harmony(exc):
                raise
        ex.retried = True
        try:
            return await self._open_any(ex)
        except HttpError as exc:
            if not _is_harmony(exc):
                raise
            raise HttpError(
                502,
                "the engine failed twice to parse the model's output (HarmonyError, a "
                "gpt-oss harmony-format sampling fault); the request was retried once",
                code="harmony_error",
            ) from None

    async def _open_any(self, ex: Exchange) -> Opened:
        tried: list[str] = []
        failure: HttpError | None = None
        for _ in range(2):
            replica = self.balancer.pick(ex.route.candidates, tried)
            if replica is None:
                break
            if tried:
                ex.retried = True
            tried.append(replica.id)
            opened, failure = await self._try(replica, ex)
            if opened is not None:
                return opened
        raise failure or HttpError(
            503, f"no replica of `{ex.route.requested}` is available", code="no_ready_replica",
            headers={"Retry-After": "5"},
        )  # fmt: skip

    async def _try(self, replica: Replica, ex: Exchange) -> tuple[Opened | None, HttpError | None]:
        """One attempt. Success → (opened, None); a retryable failure → (None, error).

        A first-byte timeout counts against the replica but is not retried (the engine may
        still be working on it); a cancelled attempt (client gone) frees a probe slot.
        """
        self.balancer.begin(replica.id)
        verdict = ""
        try:
            response = await self._post(replica, ex)
            if response.status < 400 or (response.status < 500 and not await _harmony(response)):
                verdict = "ok"  # a 4xx is the client's fault, not the replica's
                self.balancer.succeeded(replica.id)
                return Opened(replica, response), None
            verdict = "failed"
            body = ex.error_body(response.status, await self._read_error(response))
            return None, HttpError(response.status, "engine error", source="engine", payload=body)
        except RETRYABLE as exc:
            verdict = "failed"
            return None, HttpError(
                502,
                f"could not reach the engine of `{replica.served_name}` ({replica.id}): "
                f"{exc.__class__.__name__}",
                code="engine_unreachable",
            )
        except HttpError:
            verdict = "failed"
            raise
        finally:
            self._after_attempt(replica.id, verdict)

    def _after_attempt(self, replica_id: str, verdict: str) -> None:
        if verdict == "ok":
            return  # the slot is held until the answer is relayed (`_settle`)
        self.balancer.end(replica_id)
        if verdict == "failed":
            self.balancer.failed(replica_id)
        else:
            self.balancer.abandon(replica_id)

    async def _post(self, replica: Replica, ex: Exchange) -> aiohttp.ClientResponse:
        loop = asyncio.get_running_loop()
        deadline = min(ex.deadline, loop.time() + ex.timeouts.first_byte)
        try:
            async with asyncio.timeout_at(deadline):
                return await self.session.post(
                    replica.base_url + ex.path,
                    data=ex.body,
                    headers=_upstream_headers(replica),
                    timeout=self._client_timeout(ex.timeouts.connect),
                )
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise aiohttp.ClientConnectionError("connect timed out") from exc
            raise HttpError(
                504,
                f"the engine of `{replica.served_name}` sent nothing within "
                f"{ex.timeouts.first_byte:g} s (first-byte timeout)",
                code="engine_timeout",
            ) from None

    async def _read_error(self, response: aiohttp.ClientResponse) -> bytes:
        raw = b""
        try:
            async with asyncio.timeout(5.0):
                raw = await response.read()
        except (TimeoutError, *RETRYABLE):
            pass
        finally:
            response.close()
        return raw

    def _client_timeout(self, connect: float) -> aiohttp.ClientTimeout:
        timeout = self._client_timeouts.get(connect)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, connect=connect)
            self._client_timeouts[connect] = timeout
        return timeout

    # -- relay -----------------------------------------------------------------------
    async def _relay_whole(self, ex: Exchange, upstream: aiohttp.ClientResponse) -> web.Response:
        loop = asyncio.get_running_loop()
        deadline = min(ex.deadline, loop.time() + ex.timeouts.idle)
        try:
            async with asyncio.timeout_at(deadline):
                raw = await upstream.read()
        except TimeoutError:
            why = "the engine stopped sending its answer (idle or total timeout)"
            raise HttpError(504, why, code="engine_timeout") from None
        except RETRYABLE as exc:
            raise HttpError(
                502, f"the engine dropped the connection mid-answer ({exc.__class__.__name__})",
                code="engine_disconnected",
            ) from None  # fmt: skip
        ex.first_at = self.clock()
        ex.status = upstream.status
        if upstream.status >= 400:
            body = ex.error_body(upstream.status, raw)
            return web.Response(status=upstream.status, body=body, headers=JSON_HEADERS)
        content_type = upstream.headers.get("Content-Type", "application/json")
        if ex.translation is not None:
            return web.Response(status=200, body=self._translate_whole(ex, raw),
                                headers=JSON_HEADERS)  # fmt: skip
        if ex.reshape is not None:
            raw, content_type = self._reshape(ex.reshape, raw), "application/json"
        elif ex.rewrite and content_type.startswith("application/json"):
            raw = self._rewrite_whole(ex, raw)
        else:
            read_usage({"usage": codec.usage_of(raw)}, ex.tokens)
            if ex.route.served_name != ex.route.requested:
                raw = swap_model(raw, ex.route.served_name, ex.route.requested)
        headers = {"Content-Type": content_type}
        return web.Response(status=upstream.status, body=raw, headers=headers)

    def _translate_whole(self, ex: Exchange, raw: bytes) -> bytes:
        """A whole chat answer as the client's API's answer."""
        assert ex.translation is not None
        try:
            obj = codec.loads(raw)
        except ValueError:
            raise HttpError(
                502, "the engine's answer is not JSON", code="engine_bad_answer"
            ) from None
        if not isinstance(obj, dict):
            raise HttpError(502, "the engine's answer is not an object", code="engine_bad_answer")
        read_usage(obj, ex.tokens)
        normalize(obj, ex.route.requested)
        self._seen(ex, obj)
        return codec.dumps(ex.translation.from_chat(obj))

    def _reshape(self, reshape: Callable[[dict[str, Any]], dict[str, Any]], raw: bytes) -> bytes:
        try:
            obj = codec.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise HttpError(502, "the engine's answer is not a JSON object",
                            code="engine_bad_answer")  # fmt: skip
        return codec.dumps(reshape(obj))

    def _seen(self, ex: Exchange, answer: dict[str, Any]) -> None:
        if ex.on_answer is None:
            return
        choices = answer.get("choices") or [{}]
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        if isinstance(message, dict):
            ex.on_answer(message)

    def _rewrite_whole(self, ex: Exchange, raw: bytes) -> bytes:
        try:
            obj = codec.loads(raw)
        except ValueError:
            return raw
        if not isinstance(obj, dict):
            return raw
        read_usage(obj, ex.tokens)
        self._seen(ex, obj)
        fixed = strict.conform(obj)
        if normalize(obj, ex.route.requested) or fixed:
            return codec.dumps(obj)
        return raw  # nothing changed: skip re-encoding

    async def _relay_stream(
        self, request: web.BaseRequest, ex: Exchange, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        response = ex.early or web.StreamResponse(status=200, headers=SSE_HEADERS)
        if not response.prepared:
            await response.prepare(request)
        ex.status = 200
        relay = self._relay(ex)
        tail = await self._pump(ex, upstream, relay, response)
        if tail:
            await _send(response, tail)
        await _send(response, b"", eof=True)
        ex.tokens = relay.tokens
        ex.reasoning_chunks = relay.reasoning_chunks
        if ex.on_answer is not None and relay.answer is not None:
            ex.on_answer(relay.answer.message())
        return response

    def _relay(self, ex: Exchange) -> SseRelay | TranslatingRelay:
        if ex.translation is not None:
            return TranslatingRelay(ex.translation.writer())
        return SseRelay(
            ex.route.requested,
            wants_usage=ex.wants_usage,
            rewrite=ex.rewrite,
            served=ex.route.served_name,
            observe=ex.on_answer is not None,
        )

    async def _pump(
        self, ex: Exchange, upstream: aiohttp.ClientResponse, relay: SseRelay | TranslatingRelay,
        response: web.StreamResponse,
    ) -> bytes:  # fmt: skip
        """Copy engine events to the client until the end; returns what still must be sent."""
        loop = asyncio.get_running_loop()
        total_deadline = ex.deadline
        wait, phase = ex.timeouts.first_byte, "first-byte"
        last = 0.0
        try:
            while True:
                async with asyncio.timeout_at(min(total_deadline, loop.time() + wait)):
                    data = await upstream.content.readany()
                if not data:
                    return relay.finish()
                now = self.clock()
                if ex.first_at is None:
                    ex.first_at = now
                    wait, phase = ex.timeouts.idle, "idle"
                else:
                    ex.gaps.append(now - last)
                last = now
                out = relay.feed(data)
                if out:
                    await _send(response, out)
        except TimeoutError:
            which = "total" if loop.time() >= total_deadline else phase
            why = f"the engine sent nothing within the {which} timeout"
            return self._cut(ex, relay, 504, why, "engine_timeout")
        except RETRYABLE as exc:
            why = f"the engine closed the stream mid-answer ({exc.__class__.__name__})"
            return self._cut(ex, relay, 502, why, "engine_disconnected")

    def _cut(
        self, ex: Exchange, relay: SseRelay | TranslatingRelay, status: int, why: str, code: str
    ) -> bytes:
        """The end of a stream the engine broke: the API's error event (once), then close."""
        ex.status = status
        return relay.cut(status, why, code)


HARMONY_MARKERS = (b"HarmonyError", b"openai_harmony")


async def _harmony(response: aiohttp.ClientResponse) -> bool:
    """Whether a 4xx answer is a HarmonyError (vLLM answers some with 400). Reads the body,
    which aiohttp keeps, so the answer can still be relayed."""
    try:
        async with asyncio.timeout(5.0):
            raw = await response.read()
    except (TimeoutError, *RETRYABLE):
        return False
    return any(marker in raw for marker in HARMONY_MARKERS)


def _is_harmony(exc: HttpError) -> bool:
    body = exc.payload or b""
    return exc.source == "engine" and any(marker in body for marker in HARMONY_MARKERS)


def swap_model(raw: bytes, served: str, requested: str) -> bytes:
    """The requested name for the served one in a passed-through answer (a byte replace:
    `"model":"<name>"` only occurs as a key, quotes inside strings are escaped)."""
    return raw.replace(b'"model":' + codec.dumps(served), b'"model":' + codec.dumps(requested))
