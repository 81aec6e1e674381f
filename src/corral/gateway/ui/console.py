"""The web console at `/ui`: a few JSON routes and one bundled single-page app.

    console = Console(gateway, sessions, ledger=ledger, actions=actions, clock=time.time)
    gateway.console = console          # the gateway hands it every /ui path

Routes (all under /ui; the gateway's route table sends them here, and only here):

    GET  /ui, /ui/<page>          the app (index.html), or the login page without a session
    GET  /ui/static/<file>        the bundle, styles, icon (no data in them; no auth)
    POST /ui/login                form field `key` → session cookie, 303 to /ui
    POST /ui/logout
    GET  /ui/api/fleet | live | deployments/<name> | report/<name>
    POST /ui/api/chat             exactly the gateway's /v1/chat/completions, as the session
    POST /ui/api/actions/<action>/<deployment>     admin sessions only

Beyond loopback (auth on) a request without a valid session gets the login page and
nothing else: API routes answer 401 in the OpenAI error shape. POSTs under /ui/api must
carry `X-Corral-Console: 1`: with the SameSite=Strict cookie that makes a forged
cross-site request impossible twice over (a form cannot set the header, and a script on
another origin cannot without a CORS preflight this gateway never answers).

Nothing here runs on the gateway's request path for /v1: the console only adds a branch
after the route table's own lookups.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from importlib import resources
from urllib.parse import parse_qs, unquote

from aiohttp import web

from corral.gateway.app import GENERATION, Gateway, json_response, normalize_path, read_body
from corral.gateway.auth import Principal
from corral.gateway.engine_metrics import GpuSample
from corral.gateway.errors import HttpError
from corral.gateway.ui import views
from corral.gateway.ui.actions import ConsoleActions, NoActions
from corral.gateway.ui.sessions import (
    COOKIE,
    Session,
    Sessions,
    clear_cookie_header,
    cookie_header,
    require_admin,
)
from corral.ledger.db import Ledger

STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
                ".html": "text/html"}  # fmt: skip
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOGIN_FORM_LIMIT = 4096
log = logging.getLogger("corral.gateway.ui")


def load_static() -> dict[str, bytes]:
    """The committed front-end build, read once."""
    folder = resources.files("corral.gateway.ui") / "static"
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}


class Console:
    """Serves the /ui routes for one gateway."""

    def __init__(
        self,
        gateway: Gateway,
        sessions: Sessions,
        *,
        ledger: Ledger | None = None,
        actions: ConsoleActions | None = None,
        gpus: Callable[[], Sequence[GpuSample]] = list,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.sessions = sessions
        self.ledger = ledger
        self.actions = actions or NoActions()
        self.gpus = gpus
        self.clock = clock
        self.static = load_static()

    async def __call__(self, request: web.BaseRequest, _who: Principal) -> web.StreamResponse:
        path = normalize_path(request.path).removeprefix("/ui")
        if path.startswith("/static/") and request.method == "GET":
            return self._asset(path.removeprefix("/static/"))
        if path == "/login" and request.method == "POST":
            return await self.login(request)
        if path == "/logout" and request.method == "POST":
            return self.logout(request)
        session = self.sessions.lookup(request.cookies.get(COOKIE))
        if path.startswith("/api/"):
            return await self.api(request, path.removeprefix("/api"), session)
        if request.method != "GET":
            raise HttpError(405, f"{request.method} is not allowed here", code="bad_method")
        return self._page("index.html" if session else "login.html")

    # -- pages and assets -------------------------------------------------------------
    def _page(self, name: str, status: int = 200, error: str = "") -> web.Response:
        body = self.static[name].replace(b"<!--error-->", _error_html(error).encode())
        return web.Response(status=status, body=body, headers=_headers("text/html"))

    def _asset(self, name: str) -> web.Response:
        if name not in self.static or name.endswith(".html"):
            raise HttpError(404, f"no console file {name}", code="unknown_route")
        suffix = name[name.rfind(".") :]
        return web.Response(body=self.static[name], headers=_headers(STATIC_TYPES[suffix]))

    # -- sessions ---------------------------------------------------------------------
    async def login(self, request: web.BaseRequest) -> web.StreamResponse:
        form = parse_qs((await read_body(request, LOGIN_FORM_LIMIT)).decode(errors="replace"))
        key = (form.get("key") or [""])[0]
        try:
            token, session = self.sessions.login(key)
        except HttpError as exc:
            return self._page("login.html", exc.status, json.loads(exc.body())["error"]["message"])
        response = web.Response(status=303, headers={**SECURITY_HEADERS, "Location": "/ui"})
        response.headers["Set-Cookie"] = cookie_header(token, self.sessions.ttl)
        del session
        return response

    def logout(self, request: web.BaseRequest) -> web.StreamResponse:
        self.sessions.logout(request.cookies.get(COOKIE))
        response = web.Response(status=303, headers={**SECURITY_HEADERS, "Location": "/ui"})
        response.headers["Set-Cookie"] = clear_cookie_header()
        return response

    # -- JSON -------------------------------------------------------------------------
    async def api(
        self, request: web.BaseRequest, path: str, session: Session | None
    ) -> web.StreamResponse:
        if session is None:
            raise HttpError(401, "log in at /ui first", code="no_console_session")
        if request.method == "POST":
            if request.headers.get("X-Corral-Console") != "1":
                raise HttpError(403, "missing X-Corral-Console header", code="csrf")
            return await self._post(request, path, session)
        if request.method != "GET":
            raise HttpError(405, f"{request.method} is not allowed here", code="bad_method")
        return _json(self._get(path, session))

    def _get(self, path: str, session: Session) -> object:
        if path == "/fleet":
            return self.fleet(session)
        if path == "/live":
            return views.live_view(self.gateway.metrics, self.clock())
        if path.startswith("/deployments/"):
            return views.deployment_view(self.ledger, unquote(path.removeprefix("/deployments/")))
        if path.startswith("/report/"):
            name = unquote(path.removeprefix("/report/"))
            return {"name": name, "html": views.report_html(self.ledger, name)}
        raise HttpError(404, f"no console route {path}", code="unknown_route")

    def fleet(self, session: Session) -> dict[str, object]:
        gw = self.gateway
        who = session.principal
        catalog = [e for e in gw.router.catalog() if who.may_use(e.name, *e.resolves_to)]
        view = views.fleet_view(gw.fleet.deployments(), catalog, self.ledger, self.gpus())
        for host in view["hosts"]:
            for card in host["deployments"]:
                offered = self.actions.available(card["name"]) if session.admin else ()
                card["actions"] = sorted(offered)
        return {**view, "who": {"name": who.name, "admin": session.admin}}

    async def _post(
        self, request: web.BaseRequest, path: str, session: Session
    ) -> web.StreamResponse:
        if path == "/chat":
            endpoint = GENERATION["/v1/chat/completions"]
            return await self.gateway.generate(request, session.principal, endpoint)
        if path.startswith("/actions/"):
            action, _, deployment = path.removeprefix("/actions/").partition("/")
            require_admin(session)
            message = await self.actions.act(action, unquote(deployment))
            log.info("console: %s %s by key %r", action, deployment, session.principal.name)
            return _json({"ok": True, "message": message})
        raise HttpError(404, f"no console route {path}", code="unknown_route")


def _headers(content_type: str) -> dict[str, str]:
    return {**SECURITY_HEADERS, "Content-Type": f"{content_type}; charset=utf-8"}


def _json(obj: object) -> web.Response:
    response = json_response(obj)
    response.headers.update(SECURITY_HEADERS)
    return response


def _error_html(message: str) -> str:
    if not message:
        return ""
    escaped = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<p class="error" role="alert">{escaped}</p>'
