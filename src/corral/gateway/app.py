"""The gateway's request handling: handle → authenticate → route → admit → forward → account.

`Gateway` takes everything it uses as arguments (fleet view, settings, roles, key source,
clock, HTTP session) and exposes one coroutine, `handle(request)`, that aiohttp's
low-level server calls for every request. There is no router framework: the path is
normalized (percent-decoding by aiohttp, then duplicate slashes, `.`/`..` segments and a
trailing slash) and looked up in a table of the routes corral serves; anything else is a
404, so no engine-only path (`/tokenize`, `/metrics` of the engine, ...) is reachable.
Normalizing before the lookup and before auth means `//v1/../metrics` cannot dodge a key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from corral.bench.shapes import RequestShape, ShapeLog
from corral.config import GatewaySettings, Role
from corral.errors import CorralError, NoCapacity
from corral.fleet import FleetView, OnDemand, Progress, all_replicas, pairs
from corral.gateway import limits
from corral.gateway.admission import Admission
from corral.gateway.apis import Api, ApiFront
from corral.gateway.auth import Authenticator, KeySource, Principal
from corral.gateway.balance import Balancer
from corral.gateway.engine_metrics import EngineScraper, GpuSampler, gpu_lines
from corral.gateway.errors import HttpError
from corral.gateway.metrics import GatewayMetrics, key_lines, on_demand_lines, replica_lines
from corral.gateway.proxy import CLIENT_CLOSED, JSON_HEADERS, Exchange, Upstream
from corral.gateway.ratelimit import NO_LEASE, KeyLimiter, Lease
from corral.gateway.routing import CatalogEntry, Route, Router
from corral.gateway.starting import StartNotice
from corral.gateway.translate import messages, tokens
from corral.gateway.usage import UsageRecorder

log = logging.getLogger("corral.gateway")

Handler = Callable[[web.BaseRequest, Principal], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Endpoint:
    """A routed path: whether answers are normalized and stream usage is requested."""

    path: str
    rewrite: bool
    api: Api = "other"


GENERATION = {
    "/v1/chat/completions": Endpoint("/v1/chat/completions", rewrite=True, api="chat"),
    "/v1/completions": Endpoint("/v1/completions", rewrite=True, api="completions"),
    # Passed through, or translated to chat where the engine lacks them (apis.py).
    "/v1/responses": Endpoint("/v1/responses", rewrite=False, api="responses"),
    "/v1/messages": Endpoint("/v1/messages", rewrite=False, api="messages"),
    # Embedding, reranker and tokenizer routes: routed, authenticated, metered, as is.
    "/v1/embeddings": Endpoint("/v1/embeddings", rewrite=False),
    "/v1/rerank": Endpoint("/v1/rerank", rewrite=False),
    "/v1/score": Endpoint("/v1/score", rewrite=False),
    "/tokenize": Endpoint("/tokenize", rewrite=False),
    "/detokenize": Endpoint("/detokenize", rewrite=False),
}


def normalize_path(path: str) -> str:
    """Collapse `//`, resolve `.` and `..`, drop a trailing slash: one spelling per route."""
    squashed = "/" + "/".join(part for part in path.split("/") if part)
    return posixpath.normpath(squashed) if "." in squashed else squashed


class Gateway:
    """One gateway: routing, admission, proxying and accounting over a live fleet view."""

    def __init__(
        self,
        fleet: FleetView,
        settings: GatewaySettings,
        *,
        session: aiohttp.ClientSession,
        roles: Mapping[str, Role] | None = None,
        key_store: KeySource | None = None,
        clock: Callable[[], float] = time.monotonic,
        auth_required: bool = False,
        usage: UsageRecorder | None = None,
        engines: EngineScraper | None = None,
        gpus: GpuSampler | None = None,
        on_demand: OnDemand | None = None,
    ) -> None:
        self.fleet = fleet
        self.on_demand = on_demand
        self.settings = settings
        self.clock = clock
        # Beyond loopback, /metrics (key names, models, traffic) needs a key like the rest.
        self.metrics_public = not (auth_required or settings.metrics_require_key)
        self.router = Router(fleet, roles)
        self.balancer = Balancer(
            failures=settings.breaker_failures, cooldown=settings.breaker_cooldown, clock=clock
        )
        self.admission = Admission()
        self.auth = Authenticator(settings.api_keys, key_store, clock=clock, required=auth_required)
        self.metrics = GatewayMetrics()
        self.upstream = Upstream(session, self.balancer, clock)
        self.front = ApiFront(settings.apis)
        self.limiter = KeyLimiter(clock)
        self.usage = usage or UsageRecorder(None)
        # Request shapes for `corral tune --workload replay:` (lengths and timing only).
        self.shapes = ShapeLog(settings.record_shapes) if settings.record_shapes else None
        self.engines = engines
        self.gpus = gpus
        # The web console (gateway/ui/) plugs in here; it does its own cookie auth.
        self.console: Handler | None = None

    # -- dispatch --------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """aiohttp's entry point: every request, every path."""
        path = normalize_path(request.path)
        try:
            handler = self._lookup(request.method, path)
            principal = self._authenticate(request, path)
            return await handler(request, principal)
        except HttpError as exc:
            return error_response(exc, path)
        except Exception:
            # A bug or an unexpected failure (the key store's SQLite, say): still an answer
            # in the API's error shape, never aiohttp's HTML page; the traceback goes to the log.
            log.exception("unexpected error handling %s %s", request.method, path)
            failure = HttpError(500, "internal gateway error (see its log)", code="internal_error")
            return error_response(failure, path)

    def _lookup(self, method: str, path: str) -> Handler:
        if path in GENERATION and method == "POST":
            endpoint = GENERATION[path]
            return lambda request, who: self.generate(request, who, endpoint)
        if method == "GET":
            if path == "/health":
                return self.health
            if path == "/metrics":
                return self.prometheus
            if path == "/v1/models":
                return self.models
            if path.startswith("/v1/models/"):
                return self.model
        if self.console is not None and (path == "/ui" or path.startswith("/ui/")):
            return self.console
        raise HttpError(404, f"no route {method} {path}", code="unknown_route")

    def _authenticate(self, request: web.BaseRequest, path: str) -> Principal:
        if path == "/health" or (path == "/metrics" and self.metrics_public):
            return Principal("")
        try:
            return self.auth.authenticate(request.headers)
        except HttpError:
            # The console (only /ui paths reach it) checks its session cookie itself; this
            # branch costs the /v1 path nothing.
            if self.console is not None and path.startswith("/ui"):
                return Principal("")
            raise

    # -- small routes ----------------------------------------------------------------
    async def health(self, _request: web.BaseRequest, _who: Principal) -> web.StreamResponse:
        ready = sum(1 for r in all_replicas(self.fleet) if r.routable)
        return json_response({"status": "ok", "routable_replicas": ready})

    async def models(self, _request: web.BaseRequest, who: Principal) -> web.StreamResponse:
        cards = [
            _card(entry)
            for entry in self.router.catalog()
            if who.may_use(entry.name, *entry.resolves_to)
        ]
        return json_response({"object": "list", "data": cards})

    async def model(self, request: web.BaseRequest, who: Principal) -> web.StreamResponse:
        name = normalize_path(request.path).removeprefix("/v1/models/")
        for entry in self.router.catalog():
            if entry.name == name and who.may_use(entry.name, *entry.resolves_to):
                return json_response(_card(entry))
        raise HttpError(404, f"The model `{name}` does not exist.", param="model",
                        code="model_not_found")  # fmt: skip

    async def prometheus(self, _request: web.BaseRequest, _who: Principal) -> web.StreamResponse:
        for name, gate in self.admission.gates.items():  # read at scrape time, not per request
            self.metrics.in_flight.set((name,), gate.in_flight)
            self.metrics.queued.set((name,), gate.queued)
        extra = [*self._extra_lines(), *await self._engine_and_host()]
        text = self.metrics.render(lambda: extra)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    def _extra_lines(self) -> Iterable[str]:
        yield from self._replica_health()
        yield from key_lines(self.limiter.refused)
        if self.on_demand is not None:
            yield from on_demand_lines(self.on_demand.stats_now())

    def _replica_health(self) -> Iterable[str]:
        rows = [
            (r.served_name, r.id, r.routable, self.balancer.state(r.id))
            for r in all_replicas(self.fleet)
        ]
        return replica_lines(rows)

    async def _engine_and_host(self) -> list[str]:
        lines = [] if self.engines is None else await self.engines.collect(pairs(self.fleet))
        if self.gpus is not None:
            lines.extend(gpu_lines(self.gpus.samples()))
        return lines

    # -- generation ------------------------------------------------------------------
    async def generate(
        self, request: web.BaseRequest, who: Principal, endpoint: Endpoint
    ) -> web.StreamResponse:
        """authenticate (done) → read → route → check → admit → forward → account."""
        started = self.clock()
        labels = ("", "", who.name)
        status = 500
        ex: Exchange | None = None
        lease = NO_LEASE
        notice: StartNotice | None = None
        try:
            payload = limits.parse_body(await read_body(request, self.settings.max_body_bytes))
            model = limits.requested_model(payload)
            notice = StartNotice(request, stream=payload.get("stream") is True)
            # `model` becomes a label only once it resolved: unknown names from clients
            # must not grow the metrics without bound.
            route = await self._route_starting(model, who, notice)
            labels = (route.served_name, model, who.name)
            lease = self.limiter.admit(who.name, who.limits)
            ex = self._exchange(endpoint, route, payload, started)
            ex.early = notice.response
            response = await self._held(request, ex)
            status = ex.status
            return response
        except HttpError as exc:
            status = exc.status
            if notice is not None and notice.response is not None:
                return await notice.fail(exc)  # the stream had begun: end it with the error
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED  # the client went away before the answer was complete
            raise
        finally:
            # After the answer is on its way: accounting is off the request's critical path.
            asyncio.get_running_loop().call_soon(self._account, labels, status, ex, started, lease)

    def _route(self, model: str, who: Principal) -> Route:
        if not who.may_use(model):
            route = self._resolve_scoped(model, who)
            if not who.may_use(route.served_name):
                raise HttpError(
                    403,
                    f"the API key `{who.name}` may not use `{model}`; "
                    f"it may use: {', '.join(sorted(who.scopes))}",
                    param="model",
                    code="model_not_allowed",
                )
            return route
        return self.router.resolve(model)

    async def _route_starting(self, model: str, who: Principal, progress: Progress) -> Route:
        """The route; a stopped on-demand deployment is started first (the control plane's
        `OnDemand` does it; a client that leaves cancels only its own wait)."""
        try:
            return self._route(model, who)
        except HttpError as exc:
            if exc.code != "no_ready_replica" or self.on_demand is None:
                raise
            try:
                if not await self.on_demand.ensure(model, progress):
                    raise
            except NoCapacity as full:
                raise HttpError(
                    503,
                    full.message,
                    code="insufficient_memory",
                    headers={"Retry-After": f"{full.retry_after:.0f}"},
                ) from None
            except TimeoutError as slow:
                raise HttpError(504, str(slow), code="start_timeout") from None
            except CorralError as failed:  # the engine failed, or its recipe or config
                raise _start_failed(model, failed) from None
        log.info("on demand: %s started for a request", model)
        return self._route(model, who)

    async def _held(self, request: web.BaseRequest, ex: Exchange) -> web.StreamResponse:
        """While a request is in flight its deployment is neither idle nor evictable."""
        if self.on_demand is None:
            return await self._admitted(request, ex)
        self.on_demand.hold(ex.route.served_name)
        try:
            return await self._admitted(request, ex)
        finally:
            self.on_demand.release(ex.route.served_name)

    def _resolve_scoped(self, model: str, who: Principal) -> Route:
        """Resolve for a scoped key: a 404 lists only the names this key may use."""
        try:
            return self.router.resolve(model)
        except HttpError as exc:
            if exc.status != 404:
                raise
            raise HttpError(
                404,
                f"The model `{model}` does not exist. Models this key may use: "
                f"{', '.join(sorted(who.scopes))}",
                param="model",
                code="model_not_found",
            ) from None

    def _exchange(
        self, endpoint: Endpoint, route: Route, payload: dict[str, Any], started: float
    ) -> Exchange:
        policy = route.policy
        limits.check_caps(payload, policy.limits, policy.capabilities)
        limits.drop_engine_fields(payload, policy.limits.allowed_fields)
        stream = payload.get("stream") is True
        wants_usage = limits.wants_usage(payload)
        translation = self.front.prepare(
            endpoint.api, policy.engine, payload, route.requested,
            tools=policy.capabilities.tools,
        )  # fmt: skip
        path, rewrite = endpoint.path, endpoint.rewrite
        if translation is not None:
            payload, path, rewrite = translation.chat_request(), "/v1/chat/completions", True
        shape = tokens.for_engine(policy.engine, path, policy.capabilities.context_length)
        if shape is not None:
            payload = shape.request(payload)
        remember = policy.capabilities.reasoning and (
            translation is not None or endpoint.api == "chat"
        )
        if remember:
            self.front.restore_reasoning(payload)
        upstream = policy.upstream_model or route.served_name
        body = limits.upstream_body(payload, upstream, stream=stream and rewrite)
        timeouts = policy.timeouts or self.settings.timeouts
        return Exchange(
            path=path, route=route, body=body, stream=stream, wants_usage=wants_usage,
            rewrite=rewrite, started=started, timeouts=timeouts,
            deadline=asyncio.get_running_loop().time() + timeouts.total,
            translation=translation, on_answer=self.front.remember if remember else None,
            anthropic=endpoint.api == "messages",
            reshape=shape.answer if shape is not None else None,
        )  # fmt: skip

    async def _admitted(self, request: web.BaseRequest, ex: Exchange) -> web.StreamResponse:
        """Hold a slot of the deployment for the whole exchange."""
        name = ex.route.served_name
        head = ex.route.policy.limits
        capacity = head.max_in_flight * len(ex.route.candidates)
        await self.admission.enter(name, capacity, head.max_queue, head.queue_timeout)
        try:
            return await self.upstream.forward(request, ex)
        finally:
            self.admission.leave(name)

    def _account(
        self, labels: tuple[str, str, str], status: int, ex: Exchange | None, started: float,
        lease: Lease = NO_LEASE,
    ) -> None:  # fmt: skip
        m = self.metrics
        m.requests.inc((*labels, str(status)))
        tokens = ex.tokens if ex is not None else None
        used = tokens.prompt + tokens.completion if tokens is not None else 0
        self.limiter.release(lease, used)
        self.usage.add(labels[2], labels[0], status, tokens.prompt if tokens else 0,
                       tokens.completion if tokens else 0)  # fmt: skip
        if self.shapes is not None and ex is not None and tokens is not None:
            arrived = time.time() - (self.clock() - started)
            self.shapes.add(RequestShape(arrived, labels[0], ex.path, tokens.prompt,
                                         tokens.completion, status, ex.stream))  # fmt: skip
        if ex is None or ex.replica is None:
            return
        end = self.clock()
        m.e2e.observe(labels, end - started)
        if ex.first_at is not None:
            m.ttft.observe(labels, ex.first_at - started)
        for gap in ex.gaps:
            m.gap.observe(labels, gap)
        if ex.retried:
            m.retries.inc((labels[0],))
        tokens = ex.tokens
        if tokens.seen:
            m.prompt_tokens.inc(labels, tokens.prompt)
            m.completion_tokens.inc(labels, tokens.completion)
        reasoning = tokens.reasoning or ex.reasoning_chunks
        if reasoning:
            m.reasoning_tokens.inc(labels, reasoning)


# -- helpers ---------------------------------------------------------------------------
async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The request body, refusing (413) more than `limit` bytes before reading them all."""
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)


def _too_large(limit: int) -> HttpError:
    return HttpError(
        413, f"request body is larger than the gateway's limit of {limit} bytes",
        code="request_too_large",
    )  # fmt: skip


def _start_failed(model: str, exc: CorralError) -> HttpError:
    """Every request waiting on a failed start gets this: the reason and the last lines."""
    lines = "\n".join(getattr(exc, "log_tail", [])[-10:])
    text = f"`{model}` could not be started: {exc.message}"
    text += f" (hint: {exc.hint})" if exc.hint else ""
    text += f"\nlast engine log lines:\n{lines}" if lines else ""
    return HttpError(503, text, code="start_failed", headers={"Retry-After": "10"})


def error_response(exc: HttpError, path: str = "") -> web.Response:
    """The error in the OpenAI shape, or Anthropic's on /v1/messages."""
    body = exc.body()
    if path == "/v1/messages":
        body = messages.error_from_openai(exc.status, body)
    return web.Response(status=exc.status, body=body, headers={**JSON_HEADERS, **exc.headers})


def json_response(obj: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj).encode(), headers=JSON_HEADERS)


def _card(entry: CatalogEntry) -> dict[str, object]:
    """An OpenAI model card plus corral's routing facts under `corral` (and, for a name
    that can't take requests, why not and the engine's last lines)."""
    facts: dict[str, object] = {
        "kind": entry.kind,
        "resolves_to": list(entry.resolves_to),
        "routable": entry.routable,
        "context_length": entry.context_length,
        **entry.extra,
    }
    if not entry.routable:
        facts |= {"reason": entry.reason, "log_tail": list(entry.tail)}
    return {"id": entry.name, "object": "model", "created": 0, "owned_by": "corral",
            "corral": facts}  # fmt: skip
