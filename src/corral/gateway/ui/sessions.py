"""Console sessions: a browser trades an API key for a cookie once, at the login page.

    token, session = sessions.login(key)     # HttpError 401 for an unknown key
    sessions.lookup(cookie_value)            # the Session, or None (expired, revoked, unknown)

The key itself is checked by the gateway's `Authenticator` (the one implementation of key
checks) and never kept: a session holds the key's name, scopes and sha256. On every
lookup that sha256 must still be among the active keys, so `corral keys revoke` ends the
key's console sessions within the authenticator's refresh. Only the sha256 of a session
token is held. Sessions live in memory: a gateway restart logs everyone out.

Cookie: `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page can
make the browser send it), `Path=/ui`. No `Secure`: the gateway speaks plain HTTP; put a
TLS proxy in front of it beyond a trusted network (docs/console.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from corral.gateway.auth import ANONYMOUS, Authenticator, Principal, hash_key
from corral.gateway.errors import HttpError

COOKIE = "corral_session"
TTL_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Session:
    principal: Principal
    admin: bool
    key_sha256: str
    expires: float


LOCAL = Session(ANONYMOUS, admin=True, key_sha256="", expires=float("inf"))
"""Auth off (a loopback gateway without keys): the local operator, who may act."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    """Issued console sessions, by the sha256 of their token."""

    def __init__(
        self,
        auth: Authenticator,
        admin_keys: Collection[str],
        *,
        clock: Callable[[], float] = time.time,
        ttl: float = TTL_SECONDS,
    ) -> None:
        self.auth = auth
        self.admin_keys = frozenset(admin_keys)
        self.clock = clock
        self.ttl = ttl
        self._issued: dict[str, Session] = {}

    def required(self) -> bool:
        return self.auth.enabled()

    def login(self, key: str) -> tuple[str, Session]:
        """A new session for a valid key; HttpError 401 (the gateway's own) otherwise."""
        principal = self.auth.authenticate({"Authorization": f"Bearer {key.strip()}"})
        token = secrets.token_urlsafe(32)
        session = Session(
            principal,
            admin=principal.name in self.admin_keys,
            key_sha256=hash_key(key.strip()),
            expires=self.clock() + self.ttl,
        )
        self._issued[_digest(token)] = session
        return token, session

    def lookup(self, token: str | None) -> Session | None:
        """The live session for a cookie value; None when auth is on and it is not valid."""
        if not self.required():
            return LOCAL
        if not token:
            return None
        session = self._issued.get(_digest(token))
        if session is None:
            return None
        if session.expires <= self.clock() or not self._key_active(session.key_sha256):
            self._issued.pop(_digest(token), None)
            return None
        return session

    def logout(self, token: str | None) -> None:
        if token:
            self._issued.pop(_digest(token), None)

    def _key_active(self, digest: str) -> bool:
        wanted = digest.encode()
        found = False
        for record in self.auth.records():  # no early exit, as the authenticator does
            found |= hmac.compare_digest(wanted, record.sha256.encode())
        return found


def cookie_header(token: str, ttl: float = TTL_SECONDS) -> str:
    return f"{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={int(ttl)}"


def clear_cookie_header() -> str:
    return f"{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"


def require_admin(session: Session) -> None:
    if not session.admin:
        raise HttpError(
            403,
            f"the API key `{session.principal.name}` may not act from the console; "
            "name it in gateway.admin_keys in corral.yaml",
            code="not_admin",
        )
